"""Fast Informed Bound (FIB) value iteration for a discrete POMDP, vectorised in numpy, and
the restricted policy of the grid task built from its alpha vectors.

POMDP: T[a, s, s'] transitions, O[a, s', o] observation probabilities, R[s, a] rewards,
discount gamma. FIB (Hauskrecht 2000; Kochenderfer et al. 2022, Sec. 21.2) iterates one
alpha vector per action,

    alpha_a(s) = R(s, a) + gamma * sum_o max_a' sum_s' O(o | s', a) T(s' | s, a) alpha_a'(s'),

an upper bound on the optimal POMDP value at any belief b (V(b) <= max_a b . alpha_a) that
lies between the blind-policy alphas (each action repeated forever; a lower bound) and
QMDP (the fully observed MDP's Q-values). With deterministic transitions, as on the grid,
the sum over s' has one term, so FIB coincides with QMDP there.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from harness.tasks.grid_rl.env import Grid

MAX_ITERATIONS = 100_000


@dataclass(frozen=True)
class Solution:
    """Alpha vectors (A, S), the iterations taken and the final max change."""

    alphas: np.ndarray
    iterations: int
    residual: float


def _iterate(update, alphas: np.ndarray, tol: float) -> Solution:
    for it in range(1, MAX_ITERATIONS + 1):
        new = update(alphas)
        residual = float(np.abs(new - alphas).max())
        alphas = new
        if residual <= tol:
            return Solution(alphas, it, residual)
    raise RuntimeError(f"value iteration did not converge in {MAX_ITERATIONS} iterations "
                       f"(residual {residual:.3g})")


def fib(t: np.ndarray, o: np.ndarray, r: np.ndarray, gamma: float,
        tol: float = 1e-10) -> Solution:
    """FIB alpha vectors (A, S) of the POMDP (T, O, R, gamma), iterated to ``tol``."""
    n_a, n_s, _ = t.shape
    n_o = o.shape[-1]
    reward = r.T  # (A, S)

    def update(alphas: np.ndarray) -> np.ndarray:
        # x[a, s', o, a'] = O(o | s', a) alpha_a'(s'); then sum over s' with T(s' | s, a).
        x = o[:, :, :, None] * alphas.T[None, :, None, :]
        inner = np.matmul(t, x.reshape(n_a, n_s, n_o * n_a)).reshape(n_a, n_s, n_o, n_a)
        return reward + gamma * inner.max(-1).sum(-1)

    return _iterate(update, np.zeros((n_a, n_s)), tol)


def qmdp(t: np.ndarray, r: np.ndarray, gamma: float, tol: float = 1e-10) -> Solution:
    """Q-values of the fully observed MDP as alpha vectors (A, S): the QMDP upper bound."""
    reward = r.T

    def update(alphas: np.ndarray) -> np.ndarray:
        return reward + gamma * np.matmul(t, alphas.max(0))

    return _iterate(update, np.zeros_like(reward), tol)


def blind(t: np.ndarray, r: np.ndarray, gamma: float, tol: float = 1e-10) -> Solution:
    """Values of the blind policies 'repeat action a forever' (A, S): a lower bound."""
    reward = r.T

    def update(alphas: np.ndarray) -> np.ndarray:
        return reward + gamma * np.matmul(t, alphas[:, :, None])[..., 0]

    return _iterate(update, np.zeros_like(reward), tol)


def belief_value(alphas: np.ndarray, beliefs: np.ndarray) -> np.ndarray:
    """max_a b . alpha_a for beliefs (..., S)."""
    return (beliefs @ alphas.T).max(-1)


def grid_utilities(grid: Grid, gamma: float, tol: float = 1e-10) -> np.ndarray:
    """(grid, A): utilities of each action at observed x under the uniform belief over y,
    b_x . alpha_a with the FIB alphas of the grid POMDP."""
    alphas = fib(grid.transitions, grid.observations, grid.step_reward, gamma, tol).alphas
    return alphas.reshape(grid.actions, grid.size, grid.size).mean(-1).T


def policy_from_utilities(utilities: np.ndarray, mode: str, temperature: float = 1.0,
                          tie_tol: float = 1e-9) -> np.ndarray:
    """(..., A) action probabilities: argmax (actions within ``tie_tol`` of the best, relative
    to the utility scale, share the mass evenly: symmetric ties are real here, e.g. UP and
    DOWN at the central x) or softmax(utilities / temperature)."""
    if mode == "argmax":
        best = utilities.max(-1, keepdims=True)
        scale = max(1.0, float(np.abs(utilities).max()))
        top = (utilities >= best - tie_tol * scale).astype(float)
        return top / top.sum(-1, keepdims=True)
    if mode == "softmax":
        z = utilities / temperature
        z = np.exp(z - z.max(-1, keepdims=True))
        return z / z.sum(-1, keepdims=True)
    raise ValueError(f"unknown restricted policy {mode!r}")


@lru_cache(maxsize=16)
def restricted_policy(size: int, extent: float, width: float, gamma: float, mode: str,
                      temperature: float, tol: float = 1e-10) -> np.ndarray:
    """(grid, A) POMDP policy at each observed x (cached: every cell of a sweep reuses it)."""
    grid = Grid(size, extent, width)
    policy = policy_from_utilities(grid_utilities(grid, gamma, tol), mode, temperature)
    policy.setflags(write=False)
    return policy
