"""The EPIC pseudometric: invariances, pseudometric axioms, and the state-only/point-biserial case.

Property tests run on many seeded random rewards (deterministic, no extra dependency).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from vlmrm.errors import VLMRMError
from vlmrm.evaluation.epic import (
    ConstantRewardError,
    canonicalize,
    epic_distance,
    epic_distance_state_only,
    pearson_correlation,
    pearson_distance,
    point_biserial,
)

GAMMA = 0.9


def base_reward(s: np.ndarray, a: np.ndarray, s_next: np.ndarray) -> np.ndarray:
    """A nonlinear reward of a transition between 2-d states with 1-d actions."""
    return np.sin(3 * s_next[:, 0]) + s[:, 1] * a[:, 0] - 0.5 * s_next[:, 1] ** 2 + 0.3 * a[:, 0] ** 2


def potential(s: np.ndarray) -> np.ndarray:
    return 2.0 * np.cos(s[:, 0]) + s[:, 1] ** 3 - 4.0 * s[:, 0] * s[:, 1]


@pytest.fixture(scope="module")
def samples() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "states": rng.normal(size=(60, 2)),
        "actions": rng.uniform(-1, 1, size=(60, 1)),
        "next_states": rng.normal(size=(60, 2)),
        "state_samples": rng.normal(size=(25, 2)),
        "action_samples": rng.uniform(-1, 1, size=(6, 1)),
    }


def distance(reward_a, reward_b, samples: dict[str, np.ndarray]) -> float:
    return epic_distance(reward_a, reward_b, **samples, gamma=GAMMA)


def test_rescaled_and_shaped_reward_is_at_distance_zero(samples: dict[str, np.ndarray]) -> None:
    def shaped(s: np.ndarray, a: np.ndarray, s_next: np.ndarray) -> np.ndarray:
        return 3.7 * base_reward(s, a, s_next) + 1.25 + GAMMA * potential(s_next) - potential(s)

    assert distance(base_reward, shaped, samples) == pytest.approx(0.0, abs=1e-6)
    # The shaping is not a small perturbation: without canonicalisation the rewards differ a lot.
    raw = pearson_distance(
        base_reward(samples["states"], samples["actions"], samples["next_states"]),
        shaped(samples["states"], samples["actions"], samples["next_states"]),
    )
    assert raw > 0.2


def test_canonicalised_shaping_term_vanishes(samples: dict[str, np.ndarray]) -> None:
    def shaping(s: np.ndarray, a: np.ndarray, s_next: np.ndarray) -> np.ndarray:
        return GAMMA * potential(s_next) - potential(s)

    canon = canonicalize(shaping, **samples, gamma=GAMMA)
    np.testing.assert_allclose(canon, 0.0, atol=1e-10)


def test_negated_reward_is_at_distance_one(samples: dict[str, np.ndarray]) -> None:
    def negated(s: np.ndarray, a: np.ndarray, s_next: np.ndarray) -> np.ndarray:
        return -base_reward(s, a, s_next)

    assert distance(base_reward, negated, samples) == pytest.approx(1.0, abs=1e-9)


def test_canonicalisation_of_a_state_only_reward_subtracts_its_mean(samples: dict[str, np.ndarray]) -> None:
    def state_only(s: np.ndarray, a: np.ndarray, s_next: np.ndarray) -> np.ndarray:
        return np.tanh(s_next[:, 0]) + s_next[:, 1]

    canon = canonicalize(state_only, **samples, gamma=GAMMA)
    values = state_only(samples["states"], samples["actions"], samples["next_states"])
    pool = samples["state_samples"]
    np.testing.assert_allclose(canon, values - (np.tanh(pool[:, 0]) + pool[:, 1]).mean(), atol=1e-12)


def tabular(table: np.ndarray):
    def reward(s: np.ndarray, a: np.ndarray, s_next: np.ndarray) -> np.ndarray:
        return table[s.astype(int), a.astype(int), s_next.astype(int)]

    return reward


def tabular_samples(n_states: int, n_actions: int) -> dict[str, np.ndarray]:
    grid = np.array([(s, a, t) for s in range(n_states) for a in range(n_actions) for t in range(n_states)])
    return {
        "states": grid[:, 0],
        "actions": grid[:, 1],
        "next_states": grid[:, 2],
        "state_samples": np.arange(n_states),
        "action_samples": np.arange(n_actions),
    }


@pytest.mark.parametrize("seed", range(40))
def test_general_epic_is_a_pseudometric_on_random_tabular_rewards(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_states, n_actions = 4, 2
    tables = [rng.normal(size=(n_states, n_actions, n_states)) for _ in range(3)]
    samples = tabular_samples(n_states, n_actions)
    ra, rb, rc = (tabular(t) for t in tables)
    d_ab, d_ba = distance(ra, rb, samples), distance(rb, ra, samples)
    d_bc, d_ac = distance(rb, rc, samples), distance(ra, rc, samples)
    assert d_ab == pytest.approx(d_ba, abs=1e-12)
    assert 0.0 <= d_ab <= 1.0
    assert d_ac <= d_ab + d_bc + 1e-9
    assert distance(ra, ra, samples) == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("seed", range(100))
def test_state_only_epic_is_a_pseudometric(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 41))
    scale, shift = float(np.exp(rng.uniform(np.log(0.01), np.log(100.0)))), float(rng.uniform(-50, 50))
    a, b, c = rng.normal(size=(3, n)) * rng.uniform(0.1, 10, size=(3, 1))
    d_ab, d_bc, d_ac = epic_distance_state_only(a, b), epic_distance_state_only(b, c), epic_distance_state_only(a, c)
    assert d_ab == pytest.approx(epic_distance_state_only(b, a), abs=1e-12)
    assert d_ac <= d_ab + d_bc + 1e-9
    assert 0.0 <= d_ab <= 1.0
    # Positive affine maps leave the distance unchanged; negation maps it to sqrt(1 - d^2).
    assert epic_distance_state_only(a, scale * a + shift) == pytest.approx(0.0, abs=1e-6)
    assert epic_distance_state_only(a, -scale * a + shift) == pytest.approx(1.0, abs=1e-9)
    assert epic_distance_state_only(a * scale + shift, b) == pytest.approx(d_ab, abs=1e-7)
    assert epic_distance_state_only(a, -b) == pytest.approx(math.sqrt(max(0.0, 1 - d_ab**2)), abs=1e-7)


@pytest.mark.parametrize("seed", range(60))
def test_binary_labels_give_the_point_biserial_correlation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 61))
    labels = np.zeros(n, dtype=int)
    labels[rng.choice(n, size=rng.integers(1, n), replace=False)] = 1
    values = rng.normal(size=n) + 1.5 * labels
    r_pb = point_biserial(values, labels)
    assert r_pb == pytest.approx(np.corrcoef(values, labels)[0, 1], abs=1e-10)
    assert r_pb == pytest.approx(pearson_correlation(values, labels), abs=1e-10)
    assert epic_distance_state_only(values, labels) == pytest.approx(math.sqrt((1 - r_pb) / 2), abs=1e-10)
    assert point_biserial(values, labels.astype(bool)) == pytest.approx(r_pb, abs=1e-12)


def test_perfect_separation_by_a_two_valued_reward() -> None:
    labels = np.array([0, 1, 1, 0, 1])
    assert epic_distance_state_only(np.where(labels == 1, 0.31, 0.27), labels) == pytest.approx(0.0, abs=1e-7)
    assert epic_distance_state_only(np.where(labels == 1, 0.2, 0.9), labels) == pytest.approx(1.0, abs=1e-7)


def test_constant_rewards_raise_a_clear_error(samples: dict[str, np.ndarray]) -> None:
    with pytest.raises(ConstantRewardError, match="constant"):
        epic_distance_state_only(np.full(10, 0.3), np.arange(10.0))
    with pytest.raises(ConstantRewardError, match="both positive and negative"):
        point_biserial(np.arange(5.0), np.ones(5))
    # A constant reward canonicalises to zero everywhere: undefined correlation, not a number.
    with pytest.raises(ConstantRewardError):
        distance(base_reward, lambda s, a, t: np.full(len(s), 2.0), samples)
    # Rounding noise on a constant is still a constant.
    with pytest.raises(ConstantRewardError):
        pearson_distance(0.1 + np.arange(8) * 1e-16, np.arange(8.0))
    assert issubclass(ConstantRewardError, VLMRMError) and issubclass(ConstantRewardError, ValueError)


def test_invalid_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="same number"):
        pearson_distance(np.arange(3.0), np.arange(4.0))
    with pytest.raises(ValueError, match="finite"):
        pearson_distance(np.array([1.0, np.nan, 2.0]), np.arange(3.0))
    with pytest.raises(ValueError, match="at least 2"):
        pearson_distance(np.array([1.0]), np.array([2.0]))
    with pytest.raises(ValueError, match="binary"):
        point_biserial(np.arange(3.0), np.array([0, 1, 2]))
