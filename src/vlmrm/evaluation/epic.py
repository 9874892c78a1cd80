"""EPIC: the Equivalent-Policy Invariant Comparison pseudometric between reward functions.

Gleave et al. (2021), "Quantifying Differences in Reward Functions", define the distance between
rewards ``R_A`` and ``R_B`` as the Pearson distance between their *canonicalised* versions over a
coverage distribution of transitions::

    D_EPIC(R_A, R_B) = D_rho(C(R_A)(S, A, S'), C(R_B)(S, A, S')),   D_rho(X, Y) = sqrt((1 - rho(X, Y)) / 2)

with the canonicalisation (``S, S' ~ D_S`` and ``A ~ D_A`` independent)::

    C(R)(s, a, s') = R(s, a, s') + gamma E[R(s', A, S')] - E[R(s, A, S')] - gamma E[R(S, A, S')]

Canonicalisation removes potential-based shaping, and the Pearson distance ignores positive
rescaling and shifts, so the distance is 0 between rewards that induce the same optimal policies
under every transition dynamics, 1 between a reward and its negation, and at most 1 in general.
EPIC is a pseudometric: symmetric and satisfies the triangle inequality.

For rewards that depend on the reached state alone (as VLM rewards do: they score a frame), the
canonicalisation reduces to subtracting the mean, ``C(R)(s') = R(s') - E[R(S')]``, and the
distance is the Pearson distance between the rewards on sampled states
(:func:`epic_distance_state_only`). Rocamonde et al. (2023) compare a VLM reward against binary
human labels this way; the Pearson correlation with a binary variable is the point-biserial
correlation (:func:`point_biserial`).

The correlation of a constant reward with anything is undefined (its variance is 0); every
function here raises :class:`ConstantRewardError` in that case rather than return a number.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from vlmrm.errors import VLMRMError

RewardFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""``reward(states, actions, next_states) -> rewards``: batched along the first axis."""


class ConstantRewardError(VLMRMError, ValueError):
    """A reward (or a set of labels) is constant, so its correlation with anything is undefined."""


def pearson_correlation(x: np.ndarray, y: np.ndarray, name_x: str = "x", name_y: str = "y") -> float:
    """Pearson's correlation coefficient of two equally long samples, in [-1, 1].

    Raises:
        ConstantRewardError: if either sample is constant (zero variance).
        ValueError: if the samples differ in length, have fewer than two values or are not finite.
    """
    a = np.asarray(x, dtype=np.float64).ravel()
    b = np.asarray(y, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"{name_x} and {name_y} must have the same number of values, got {a.size} and {b.size}")
    if a.size < 2:
        raise ValueError(f"a correlation needs at least 2 values, got {a.size}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError(f"{name_x} and {name_y} must be finite (no NaN or infinity)")
    a = a - a.mean()
    b = b - b.mean()
    norm_a, norm_b = math.sqrt(float(a @ a)), math.sqrt(float(b @ b))
    # A relative tolerance: values that differ only by rounding error count as constant.
    for name, norm, values in ((name_x, norm_a, x), (name_y, norm_b, y)):
        scale = float(np.max(np.abs(np.asarray(values, dtype=np.float64))))
        if norm <= 1e-12 * max(scale, 1e-300) * math.sqrt(a.size) or norm == 0.0:
            raise ConstantRewardError(
                f"{name} is constant over all {a.size} samples, so its correlation (and EPIC distance) is "
                "undefined; sample states where it varies (for labels: include both yes and no answers)"
            )
    rho = float(a @ b) / (norm_a * norm_b)
    return min(1.0, max(-1.0, rho))


def pearson_distance(x: np.ndarray, y: np.ndarray, name_x: str = "x", name_y: str = "y") -> float:
    """The Pearson distance ``sqrt((1 - rho) / 2)`` in [0, 1]: 0 for a positive affine relation, 1 for a negative."""
    rho = pearson_correlation(x, y, name_x, name_y)
    return math.sqrt(max(0.0, (1.0 - rho) / 2.0))


def point_biserial(values: np.ndarray, labels: np.ndarray) -> float:
    """The point-biserial correlation between continuous ``values`` and binary ``labels`` (0/1 or bool).

    ``r_pb = (M_1 - M_0) / s_n * sqrt(n_1 n_0 / n^2)`` with ``M_i`` the mean of the values labelled ``i``
    and ``s_n`` the population standard deviation of all values. It equals Pearson's correlation
    with the labels as 0/1 numbers.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    lab = np.asarray(labels).ravel()
    if v.shape != lab.shape:
        raise ValueError(f"values and labels must have the same length, got {v.size} and {lab.size}")
    unique = set(np.unique(lab).tolist())
    if not unique <= {0, 1}:
        raise ValueError(f"labels must be binary (0/1 or bool), got values {sorted(unique)}")
    positive = lab.astype(bool)
    n1, n = int(positive.sum()), v.size
    n0 = n - n1
    if n1 == 0 or n0 == 0:
        raise ConstantRewardError(
            f"all {n} labels are {'positive' if n0 == 0 else 'negative'}; "
            "a correlation needs both positive and negative examples"
        )
    s_n = float(v.std())
    if s_n == 0.0:
        raise ConstantRewardError(f"values are constant over all {n} samples; the correlation is undefined")
    return float((v[positive].mean() - v[~positive].mean()) / s_n * math.sqrt(n1 * n0 / n**2))


def epic_distance_state_only(rewards_a: np.ndarray, rewards_b: np.ndarray) -> float:
    """EPIC distance between two state-only rewards given their values on the same sampled states.

    Canonicalisation subtracts the mean (which the Pearson distance ignores anyway), so this is the
    Pearson distance of the two reward vectors. ``rewards_b`` may be binary labels (0/1).
    """
    a = np.asarray(rewards_a, dtype=np.float64)
    b = np.asarray(rewards_b, dtype=np.float64)
    return pearson_distance(a - a.mean(), b - b.mean(), "the first reward", "the second reward")


def _mean_over_next(
    reward: RewardFn, from_states: np.ndarray, action_samples: np.ndarray, state_samples: np.ndarray
) -> np.ndarray:
    """``E[R(x, A, S')]`` for each ``x`` in ``from_states``, over the product of action and state samples."""
    n_actions, n_states = len(action_samples), len(state_samples)
    pair_actions = np.repeat(action_samples, n_states, axis=0)  # (n_actions * n_states, ...)
    pair_next = np.tile(state_samples, (n_actions,) + (1,) * (state_samples.ndim - 1))
    means = np.empty(len(from_states), dtype=np.float64)
    for i, x in enumerate(from_states):
        starts = np.repeat(x[None], len(pair_actions), axis=0)
        values = np.asarray(reward(starts, pair_actions, pair_next), dtype=np.float64).ravel()
        if values.size != len(pair_actions):
            raise ValueError(f"the reward returned {values.size} values for a batch of {len(pair_actions)}")
        means[i] = values.mean()
    return means


def canonicalize(
    reward: RewardFn,
    states: np.ndarray,
    actions: np.ndarray,
    next_states: np.ndarray,
    state_samples: np.ndarray,
    action_samples: np.ndarray,
    gamma: float = 0.99,
) -> np.ndarray:
    """The canonically shaped reward ``C(R)(s, a, s')`` on each given transition.

    ``E[.]`` is estimated by averaging over every combination of ``action_samples`` (``A ~ D_A``) and
    ``state_samples`` (``S, S' ~ D_S``), which costs ``(2 N + N_S) * N_A * N_S`` reward evaluations for
    ``N`` transitions. The result is invariant (up to sampling error, exactly when the same samples
    are used) to potential-based shaping ``R + gamma phi(s') - phi(s)``.
    """
    states, actions, next_states = (np.asarray(v) for v in (states, actions, next_states))
    state_samples, action_samples = np.asarray(state_samples), np.asarray(action_samples)
    if not (len(states) == len(actions) == len(next_states)):
        raise ValueError(
            f"states, actions and next_states must have the same length, got "
            f"{len(states)}, {len(actions)} and {len(next_states)}"
        )
    if len(state_samples) == 0 or len(action_samples) == 0:
        raise ValueError("canonicalisation needs at least one state sample and one action sample")
    direct = np.asarray(reward(states, actions, next_states), dtype=np.float64).ravel()
    from_next = _mean_over_next(reward, next_states, action_samples, state_samples)
    from_start = _mean_over_next(reward, states, action_samples, state_samples)
    overall = float(_mean_over_next(reward, state_samples, action_samples, state_samples).mean())
    return direct + gamma * from_next - from_start - gamma * overall


def epic_distance(
    reward_a: RewardFn,
    reward_b: RewardFn,
    states: np.ndarray,
    actions: np.ndarray,
    next_states: np.ndarray,
    state_samples: np.ndarray,
    action_samples: np.ndarray,
    gamma: float = 0.99,
) -> float:
    """EPIC distance between two reward functions ``R(s, a, s')``, in [0, 1].

    Args:
        reward_a: a batched reward function ``(states, actions, next_states) -> (N,)``.
        reward_b: the other one.
        states: states of the transitions from the coverage distribution on which the canonicalised
            rewards are correlated.
        actions: their actions.
        next_states: their next states.
        state_samples: samples of ``D_S`` for the canonicalisation.
        action_samples: samples of ``D_A`` for the canonicalisation.
        gamma: the discount factor of the shaping the distance should ignore.
    """
    canon_a = canonicalize(reward_a, states, actions, next_states, state_samples, action_samples, gamma)
    canon_b = canonicalize(reward_b, states, actions, next_states, state_samples, action_samples, gamma)
    return pearson_distance(canon_a, canon_b, "the first canonicalised reward", "the second canonicalised reward")


__all__ = [
    "ConstantRewardError",
    "RewardFn",
    "canonicalize",
    "epic_distance",
    "epic_distance_state_only",
    "pearson_correlation",
    "pearson_distance",
    "point_biserial",
]
