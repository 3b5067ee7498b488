"""Settings of the grid RL task (paper Sec. 7.3, App. D.3, D.4); light: no torch import."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, PositiveFloat, PositiveInt, field_validator

from harness.tasks.config import TaskParams


class GridRlParams(TaskParams):
    """An MDP policy on a toroidal grid trained by REINFORCE; the restricted model is the
    FIB solution of the POMDP that observes the x coordinate only. The dataset size of a
    cell is the number of training epochs (one trajectory and one update each)."""

    default_threads: ClassVar[int | None] = 1
    contract_params: ClassVar[dict] = {"steps_per_epoch": 10, "eval_rollouts": 2, "eval_steps": 5}
    contract_size: ClassVar[int] = 4
    contract_runs: ClassVar[int] = 2
    metrics: ClassVar[tuple[str, ...]] = ("reward",)
    higher_is_better: ClassVar[dict[str, bool]] = {"reward": True}
    paired_replicates: ClassVar[bool] = True  # replicate i: same init and draws, any method

    grid: PositiveInt = Field(11, description="the torus is grid x grid cells")
    extent: PositiveFloat = Field(
        2.0, description="cell coordinates are linspace(-extent, extent, grid) on each axis"
    )
    reward_width: PositiveFloat = Field(
        0.1,
        description="the 'mountain' reward R(x, y) = N([X_x, Y_y]; 0, reward_width * I), "
        "the same in the MDP and the POMDP (the authors' code used 0.1 in the environment)",
    )
    discount: float = Field(
        0.9, gt=0.0, lt=1.0, description="discount of the POMDP and of the reward-to-go"
    )
    restricted_policy: Literal["argmax", "softmax"] = Field(
        "argmax",
        description="POMDP policy at x from the uniform belief over y: argmax of the "
        "utilities (exact ties share the mass evenly) or softmax(utilities / temperature)",
    )
    temperature: PositiveFloat = Field(
        1.0, description="softmax temperature (App. D.4 uses 0.5 and 1.0; ignored by argmax)"
    )
    fib_tolerance: PositiveFloat = Field(
        1e-10, description="FIB value iteration stops when no alpha entry moves more"
    )
    steps_per_epoch: PositiveInt = Field(50, description="trajectory length of one epoch")
    hidden: PositiveInt = Field(32, description="MLP one-hot(grid^2) -> hidden tanh -> 4")
    lr: PositiveFloat = Field(1e-2, description="Adam learning rate")
    normalize_returns: bool = Field(
        False,
        description="standardise the reward-to-go within each trajectory (off: plain "
        "discounted reward-to-go, as the authors' setup describes)",
    )
    eval_rollouts: PositiveInt = Field(10, description="evaluation rollouts per run")
    eval_steps: PositiveInt = Field(22, description="steps of each evaluation rollout")

    @field_validator("grid")
    @classmethod
    def _at_least_two(cls, value: int) -> int:
        if value < 2:
            raise ValueError("the grid needs at least 2 cells a side")
        return value
