"""The toroidal grid world of the RL experiment (paper App. D.3), as lookup tables.

States are cells (x, y) of a ``grid x grid`` torus, numbered s = x * grid + y (so an
(S, ...) table reshapes to (grid, grid, ...) indexed [x, y]). Four actions move one cell
with wrap-around: UP (y + 1), DOWN (y - 1), LEFT (x - 1), RIGHT (x + 1). The reward
depends on the state only: the "mountain" R(x, y) = N([X_x, Y_y]; 0, width * I) with
X = Y = linspace(-extent, extent, grid); a step earns the reward of the cell it reaches.
Nothing terminates. Plain numpy: the task turns the tables into tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

ACTIONS = ("UP", "DOWN", "LEFT", "RIGHT")
MOVES = np.array([[0, 1], [0, -1], [-1, 0], [1, 0]])  # (dx, dy) of each action


@dataclass(frozen=True)
class Grid:
    """The torus, its moves and its reward."""

    size: int = 11
    extent: float = 2.0
    width: float = 0.1

    @property
    def states(self) -> int:
        return self.size * self.size

    @property
    def actions(self) -> int:
        return len(ACTIONS)

    def coords(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) cell indices of states."""
        return np.divmod(np.asarray(s), self.size)

    def state(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return (np.asarray(x) % self.size) * self.size + np.asarray(y) % self.size

    @cached_property
    def next_state(self) -> np.ndarray:
        """(S, A) int64: the cell each action leads to (deterministic, wrapping)."""
        x, y = self.coords(np.arange(self.states))
        return np.stack(
            [self.state(x + dx, y + dy) for dx, dy in MOVES], axis=1
        ).astype(np.int64)

    @cached_property
    def reward(self) -> np.ndarray:
        """(S,) float64: the isotropic Gaussian density N([X, Y]; 0, width I) per cell."""
        axis = np.linspace(-self.extent, self.extent, self.size)
        x, y = self.coords(np.arange(self.states))
        sq = axis[x] ** 2 + axis[y] ** 2
        return np.exp(-sq / (2.0 * self.width)) / (2.0 * np.pi * self.width)

    @cached_property
    def transitions(self) -> np.ndarray:
        """(A, S, S') one-hot transition matrices T[a, s, s']."""
        t = np.zeros((self.actions, self.states, self.states))
        for a in range(self.actions):
            t[a, np.arange(self.states), self.next_state[:, a]] = 1.0
        return t

    @cached_property
    def observations(self) -> np.ndarray:
        """(A, S', O) observation model of the POMDP: the x coordinate of the cell reached,
        whatever the action."""
        x, _ = self.coords(np.arange(self.states))
        o = np.zeros((self.states, self.size))
        o[np.arange(self.states), x] = 1.0
        return np.broadcast_to(o, (self.actions, self.states, self.size)).copy()

    @cached_property
    def step_reward(self) -> np.ndarray:
        """(S, A): the expected reward of acting, R(s, a) = R(next(s, a)); the same reward
        the MDP earns, written as the POMDP solver wants it."""
        return self.reward[self.next_state]
