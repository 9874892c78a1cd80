"""vlmrm: vision-language models as zero-shot reward models for reinforcement learning.

The reward of a frame is the cosine similarity between its image embedding and the embedding
of a goal sentence, optionally projected onto the goal-baseline direction
(Rocamonde et al., ICLR 2024, arXiv:2310.12921).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["VLMReward", "__version__"]

if TYPE_CHECKING:
    from vlmrm.reward import VLMReward


def __getattr__(name: str) -> Any:
    # Importing torch and transformers takes seconds; the CLI's --help should not pay for it.
    if name == "VLMReward":
        from vlmrm.reward import VLMReward

        return VLMReward
    raise AttributeError(f"module 'vlmrm' has no attribute {name!r}")
