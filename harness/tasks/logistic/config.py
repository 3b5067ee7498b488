"""Settings of the logistic-regression toy (paper Sec. 7.1, App. D.1, D.4, D.5)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, PositiveFloat, PositiveInt, field_validator

from harness.tasks.config import TaskParams

QUALITY_FLIP = {"exact": 0.0, "medium": 0.2, "low": 0.5}


class LogisticParams(TaskParams):
    """Features uniform on a cube, y = 1{a x1 + b x2 + c x3 + d > 0}; the restricted model
    sees x1 only and is the Bayes-optimal P(y|x1), optionally mixed with a coin flip."""

    default_threads: ClassVar[int | None] = 1
    contract_params: ClassVar[dict] = {"epochs": 20, "test_size": 50, "validation_size": 50}
    contract_size: ClassVar[int] = 5
    contract_runs: ClassVar[int] = 3
    metrics: ClassVar[tuple[str, ...]] = ("accuracy", "log_loss", "restricted_ce")
    higher_is_better: ClassVar[dict[str, bool]] = {
        "accuracy": True,
        "log_loss": False,
        "restricted_ce": False,
    }
    paired_replicates: ClassVar[bool] = True  # replicate i: same train/test data, any method

    coefficients: tuple[float, float, float, float] = Field(
        (1.0, 1.0, 1.0, -1.5),
        description="(a, b, c, d) of the separating plane a x1 + b x2 + c x3 + d = 0; "
        "b and c must be non-zero",
    )
    cube: tuple[float, float] = Field((0.0, 1.0), description="features uniform on [lo, hi]^3")
    kernel_alpha: PositiveFloat = Field(1.0, description="Laplace kernel exp(-alpha |dx1|)")
    restricted_quality: Literal["exact", "medium", "low"] | float = Field(
        "exact",
        description="coin-flip mixing of the restricted target: exact 0, medium 0.2, low 0.5, "
        "or a probability in [0, 1]",
    )
    epochs: PositiveInt = Field(5000, description="full-batch gradient-descent steps")
    lr: PositiveFloat = Field(1.0, description="learning rate (the loss is normalised by 1+lambda)")
    loss_form: Literal["convex", "additive"] = Field(
        "convex",
        description="convex: (CE + lambda term) / (1 + lambda) as in the paper's App. D; "
        "additive: CE + lambda term",
    )
    test_size: PositiveInt = Field(1000, description="fresh test points per run")
    validation_size: PositiveInt = Field(1000, description="fresh validation points per run")

    @field_validator("coefficients")
    @classmethod
    def _nonzero_bc(cls, value: tuple[float, float, float, float]) -> tuple:
        if value[1] == 0 or value[2] == 0:
            raise ValueError("b and c (the x2 and x3 coefficients) must be non-zero")
        return value

    @field_validator("cube")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[0] >= value[1]:
            raise ValueError("cube must be [lo, hi] with lo < hi")
        return value

    @field_validator("restricted_quality")
    @classmethod
    def _probability(cls, value: str | float) -> str | float:
        if isinstance(value, float) and not 0.0 <= value <= 1.0:
            raise ValueError("a coin-flip probability must lie in [0, 1]")
        return value

    @property
    def flip(self) -> float:
        """Probability of replacing the exact restricted target by a fair coin."""
        q = self.restricted_quality
        return QUALITY_FLIP[q] if isinstance(q, str) else float(q)
