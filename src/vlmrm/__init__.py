"""vlmrm: vision-language models as zero-shot reward models for reinforcement learning.

The reward of a frame is the cosine similarity between its image embedding and the embedding
of a goal sentence, optionally projected onto the goal-baseline direction
(Rocamonde et al., ICLR 2024, arXiv:2310.12921).

The public API is imported lazily (importing torch takes seconds; ``vlmrm --help`` should not pay for it):

- :class:`VLMReward`, :class:`RewardFunction`, :class:`FunctionReward`: rewards (:mod:`vlmrm.reward`).
- :class:`VLMRewardWrapper`: a sentence reward on any Gymnasium env that renders (:mod:`vlmrm.rl.wrappers`).
- :func:`train`, :func:`resume`: runs (:mod:`vlmrm.training.trainer`).
- :func:`load_config`, :func:`config_from_dict`, :class:`TrainConfig`: configs (:mod:`vlmrm.config`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from vlmrm import _moved
from vlmrm._lazy import lazy_getattr
from vlmrm._version import __version__

# OpenMP threads that wait by spinning (the default) collapse when other processes share the cores: a
# tiny-random CartPole smoke run went from 650-710 to 42 steps/s at a load average of 4.5. Waiting
# passively costs nothing measurable on an idle machine. Set before torch loads its OpenMP runtime;
# a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_moved.install()  # vlmrm.rl.trainer and the other old module names (CHANGELOG.md)


_EXPORTS = {
    "VLMReward": "vlmrm.reward.vlm_reward",
    "RewardFunction": "vlmrm.reward.contract",
    "FunctionReward": "vlmrm.reward.contract",
    "VLMRewardWrapper": "vlmrm.rl.wrappers",
    "train": "vlmrm.training.trainer",
    "resume": "vlmrm.training.trainer",
    "TrainConfig": "vlmrm.config",
    "load_config": "vlmrm.config",
    "config_from_dict": "vlmrm.config",
}
__all__ = [
    "FunctionReward",
    "RewardFunction",
    "TrainConfig",
    "VLMReward",
    "VLMRewardWrapper",
    "__version__",
    "config_from_dict",
    "load_config",
    "resume",
    "train",
]

if TYPE_CHECKING:
    from vlmrm.config import TrainConfig, config_from_dict, load_config
    from vlmrm.reward.contract import FunctionReward, RewardFunction
    from vlmrm.reward.vlm_reward import VLMReward
    from vlmrm.rl.wrappers import VLMRewardWrapper
    from vlmrm.training.trainer import resume, train


__getattr__ = lazy_getattr(__name__, _EXPORTS)
