"""The stable-baselines3 glue: vec envs that score frames, relabelling buffers, replay I/O, wrappers, rollout,
algorithms and video. Training itself is :mod:`vlmrm.training`; its old modules here (``vlmrm.rl.trainer``,
...) still import, with a DeprecationWarning (CHANGELOG.md).

The names below load on first use: an env worker process imports modules of this package to build
its env, and must not pay for the reward model's imports (transformers) it never uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlmrm._lazy import lazy_getattr

if TYPE_CHECKING:
    from vlmrm.rl.buffers import RelabelingReplayBuffer
    from vlmrm.rl.vec_env import VecVLMReward
    from vlmrm.rl.wrappers import RenderFrameInInfo, VLMRewardWrapper

_EXPORTS = {
    "RelabelingReplayBuffer": "vlmrm.rl.buffers",
    "VecVLMReward": "vlmrm.rl.vec_env",
    "RenderFrameInInfo": "vlmrm.rl.wrappers",
    "VLMRewardWrapper": "vlmrm.rl.wrappers",
}
__all__ = ["RelabelingReplayBuffer", "RenderFrameInInfo", "VLMRewardWrapper", "VecVLMReward"]


__getattr__ = lazy_getattr(__name__, _EXPORTS)
