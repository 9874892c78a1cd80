"""The reward formula against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlmrm.reward import goal_baseline_projection, mean_direction, projected_reward


def unit(v: list[float]) -> torch.Tensor:
    t = torch.tensor(v, dtype=torch.float64)
    return t / t.norm()


def test_alpha_zero_is_cosine_similarity() -> None:
    g = unit([1.0, 0.0, 0.0])
    x = torch.stack([unit([1.0, 1.0, 0.0]), unit([0.0, 0.0, 1.0]), unit([-1.0, 0.0, 0.0])])
    rewards = projected_reward(x, g, goal_baseline_projection(g, None, 0.0))
    # 1 - 0.5 * ||x - g||^2 equals x . g for unit vectors: 1/sqrt(2), 0, -1.
    np.testing.assert_allclose(rewards.numpy(), [2**-0.5, 0.0, -1.0], atol=1e-12)


def test_alpha_half_by_hand() -> None:
    # g = e1, b = e2 -> d = (1, -1, 0), P = 0.5 * d d^T / 2 + 0.5 I.
    g, b = unit([1, 0, 0]), unit([0, 1, 0])
    x = unit([0, 0, 1])
    p = goal_baseline_projection(g, b, 0.5)
    expected_p = np.array([[0.75, -0.25, 0.0], [-0.25, 0.75, 0.0], [0.0, 0.0, 0.5]])
    np.testing.assert_allclose(p.numpy(), expected_p, atol=1e-12)
    # x - g = (-1, 0, 1); (x - g) P = (-0.75, 0.25, 0.5); squared norm 0.875 -> reward 1 - 0.4375.
    assert projected_reward(x[None], g, p).item() == pytest.approx(0.5625, abs=1e-12)


def test_alpha_one_keeps_only_goal_baseline_direction() -> None:
    g, b = unit([1, 0, 0]), unit([0, 1, 0])
    p = goal_baseline_projection(g, b, 1.0)
    # Only the part of x - g along d = g - b counts.
    orthogonal = unit([0, 0, 1])
    along = unit([0, 1, 0])
    r = projected_reward(torch.stack([g, orthogonal, along]), g, p).numpy()
    # (e3 - e1) projected on d/|d| = (1,-1,0)/sqrt2: component -1/sqrt2 -> squared 0.5 -> 1 - 0.25.
    # (e2 - e1) = -d, fully kept: squared 2 -> 1 - 1 = 0.
    np.testing.assert_allclose(r, [1.0, 0.75, 0.0], atol=1e-12)


def test_projection_is_symmetric_and_idempotent_at_alpha_one() -> None:
    rng = np.random.default_rng(0)
    g, b = unit(list(rng.normal(size=8))), unit(list(rng.normal(size=8)))
    p = goal_baseline_projection(g, b, 1.0)
    torch.testing.assert_close(p, p.T)
    torch.testing.assert_close(p @ p, p)


def test_several_prompts_are_normalised_then_averaged() -> None:
    # Two prompts of very different norms count equally.
    embeddings = torch.tensor([[10.0, 0.0], [0.0, 0.1]], dtype=torch.float64)
    np.testing.assert_allclose(mean_direction(embeddings).numpy(), [2**-0.5, 2**-0.5], atol=1e-12)


def test_several_prompts_reward_by_hand() -> None:
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    baselines = torch.tensor([[0.0, 0.0, 2.0]], dtype=torch.float64)
    g, b = mean_direction(targets), mean_direction(baselines)
    x = unit([1, 0, 0])
    # alpha 0: cosine of e1 and (1,1,0)/sqrt2.
    assert projected_reward(x[None], g, goal_baseline_projection(g, b, 0.0)).item() == pytest.approx(2**-0.5)
    # alpha 1: d = (1/sqrt2, 1/sqrt2, -1), |d|^2 = 2; x - g = (1 - 1/sqrt2, -1/sqrt2, 0);
    # (x - g).d = 1/sqrt2 - 1 -> reward 1 - 0.5 * (1/sqrt2 - 1)^2 / 2.
    expected = 1 - 0.5 * (2**-0.5 - 1) ** 2 / 2
    assert projected_reward(x[None], g, goal_baseline_projection(g, b, 1.0)).item() == pytest.approx(expected)


def test_invalid_alpha_and_degenerate_baseline() -> None:
    g = unit([1, 0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        goal_baseline_projection(g, g, 1.5)
    with pytest.raises(ValueError, match="baseline"):
        goal_baseline_projection(g, None, 0.5)
    with pytest.raises(ValueError, match="same vector"):
        goal_baseline_projection(g, g.clone(), 0.5)
