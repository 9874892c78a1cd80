"""The reward of the paper, as pure tensor functions.

For unit vectors the cosine similarity is ``x . g = 1 - 0.5 * ||x - g||^2``. Goal-baseline
regularisation projects ``x - g`` before taking the norm:

    d = g - b,    P = alpha * d d^T / ||d||^2 + (1 - alpha) * I,
    reward(x) = 1 - 0.5 * ||(x - g) P||^2

``alpha = 0`` is the plain CLIP reward; ``alpha = 1`` keeps only the component of ``x - g``
along the goal-baseline direction.
"""

from __future__ import annotations

import torch


def normalize(embeddings: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """L2-normalise along the last dimension."""
    return embeddings / embeddings.norm(dim=-1, keepdim=True).clamp_min(eps)


def mean_direction(embeddings: torch.Tensor) -> torch.Tensor:
    """Average several prompt embeddings: normalise each, average, normalise the mean."""
    if embeddings.ndim != 2 or embeddings.shape[0] == 0:
        raise ValueError(
            f"expected a (num_prompts, dim) tensor with at least one prompt, got {tuple(embeddings.shape)}"
        )
    return normalize(normalize(embeddings).mean(dim=0))


def goal_baseline_projection(target: torch.Tensor, baseline: torch.Tensor | None, alpha: float) -> torch.Tensor:
    """The ``(dim, dim)`` matrix ``P = alpha * d d^T / ||d||^2 + (1 - alpha) I`` with ``d = target - baseline``."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    dim = target.shape[-1]
    identity = torch.eye(dim, dtype=target.dtype, device=target.device)
    if alpha == 0.0:
        return identity
    if baseline is None:
        raise ValueError("alpha > 0 needs a baseline embedding (give baseline_prompts)")
    direction = target - baseline
    norm_sq = direction.dot(direction)
    if norm_sq <= 1e-12:
        raise ValueError("the target and baseline prompts embed to the same vector; write a baseline that differs")
    return alpha * torch.outer(direction, direction) / norm_sq + (1.0 - alpha) * identity


def projected_reward(image_embeddings: torch.Tensor, target: torch.Tensor, projection: torch.Tensor) -> torch.Tensor:
    """``1 - 0.5 * ||(x - g) P||^2`` for each row ``x`` of ``image_embeddings`` (unit vectors)."""
    residual = (image_embeddings - target) @ projection
    return 1.0 - 0.5 * residual.pow(2).sum(dim=-1)


__all__ = [
    "goal_baseline_projection",
    "mean_direction",
    "normalize",
    "projected_reward",
]
