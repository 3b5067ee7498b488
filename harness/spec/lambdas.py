"""How a spec says lambda: a number, a schedule over dataset size, a table, or "tune".

The ratio form r = lambda / (1 + lambda) is the paper's: its schedules are linear in r.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    Discriminator,
    Field,
    NonNegativeFloat,
    Tag,
    model_serializer,
    model_validator,
)

from harness.spec.strict import StrictModel


def ratio_to_lambda(ratio: float) -> float:
    """lambda from r = lambda / (1 + lambda)."""
    return ratio / (1.0 - ratio)


def lambda_to_ratio(lam: float) -> float:
    return lam / (1.0 + lam)


class LinearRatioSchedule(StrictModel):
    """r = slope * size + intercept (optionally rounded), clipped, then lambda = r / (1 - r).

    The paper's logistic schedule is slope -0.0111, intercept 0.818; its RL schedule is
    slope -0.0002, intercept 0.1891, round 1.
    """

    schedule: Literal["linear_ratio"]
    slope: float
    intercept: float
    round: int | None = Field(None, description="decimals to round r to (None: no rounding)")
    min_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    max_ratio: float = Field(0.99, gt=0.0, lt=1.0)

    def resolve(self, size: int) -> float:
        ratio = self.slope * size + self.intercept
        if self.round is not None:
            ratio = round(ratio, self.round)
        return ratio_to_lambda(min(max(ratio, self.min_ratio), self.max_ratio))


class TableSchedule(StrictModel):
    """An explicit lambda for each dataset size."""

    schedule: Literal["table"]
    values: dict[int, NonNegativeFloat]

    def resolve(self, size: int) -> float:
        if size not in self.values:
            raise ValueError(f"lambda table has no entry for size {size}")
        return self.values[size]


class TuneLambda(StrictModel):
    """Tune lambda on validation data, per (method, size).

    ``scale: ratio`` searches r = lambda/(1+lambda) in [low, high] (the paper's axis);
    ``scale: lambda`` searches lambda itself. With ``values`` the search is that grid:
    each value is a unit of its own (trained at the tuning seed, evaluated on
    validation data, in parallel with other cells; harness.runner.dependencies), and the
    best on validation is chosen; without, Optuna samples ``tuning.trials`` values in
    [low, high].
    """

    scale: Literal["ratio", "lambda"] = "ratio"
    low: NonNegativeFloat = 0.0
    high: NonNegativeFloat = 0.95
    log: bool = False
    values: list[NonNegativeFloat] | None = Field(
        None, min_length=1,
        description="a grid of values on the scale, e.g. [0.05, 0.1, 0.2, 0.4] (low, high "
        "and log are then unused)",
    )

    @model_serializer(mode="wrap")
    def _grid_only_when_given(self, handler: Any) -> Any:
        # Left out when unset, so that the cell ids of earlier tuned specs stay as they were.
        data = handler(self)
        if isinstance(data, dict) and data.get("values") is None:
            data.pop("values", None)
        return data

    @model_validator(mode="before")
    @classmethod
    def _unwrap(cls, value: Any) -> Any:
        if value == "tune":
            return {}
        if isinstance(value, dict) and set(value) == {"tune"}:
            return value["tune"] or {}
        return value

    @model_validator(mode="after")
    def _check_range(self) -> TuneLambda:
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.scale == "ratio" and self.high >= 1.0:
            raise ValueError("with scale 'ratio', high must be below 1")
        if self.log and self.low <= 0:
            raise ValueError("a log-scale search needs low > 0")
        if self.values is not None:
            if len(set(self.values)) != len(self.values):
                raise ValueError("values: each value once")
            if self.scale == "ratio" and max(self.values) >= 1.0:
                raise ValueError("values: with scale 'ratio', every value must be below 1")
        return self

    def to_lambda(self, value: float) -> float:
        return ratio_to_lambda(value) if self.scale == "ratio" else value


def _lambda_kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return "fixed"
    if isinstance(value, TuneLambda) or value == "tune":
        return "tune"
    if isinstance(value, LinearRatioSchedule | TableSchedule):
        return value.schedule
    if isinstance(value, dict):
        if "tune" in value or (value and set(value) <= set(TuneLambda.model_fields)):
            return "tune"  # {tune: {...}}, or the dumped form {scale, low, high, log}
        return value.get("schedule")
    return None


LambdaSpec = Annotated[
    Annotated[NonNegativeFloat, Tag("fixed")]
    | Annotated[TuneLambda, Tag("tune")]
    | Annotated[LinearRatioSchedule, Tag("linear_ratio")]
    | Annotated[TableSchedule, Tag("table")],
    Discriminator(
        _lambda_kind,
        custom_error_type="invalid_lambda",
        custom_error_message="lambda must be a number, 'tune', {tune: {...}}, or "
        "{schedule: linear_ratio|table, ...}",
    ),
]


def resolve_lambda(spec: float | TuneLambda | LinearRatioSchedule | TableSchedule | None,
                   size: int) -> float | None:
    """The lambda for one dataset size; None when the method has none or it is tuned."""
    if spec is None or isinstance(spec, TuneLambda):
        return None
    if isinstance(spec, int | float):
        return float(spec)
    return spec.resolve(size)
