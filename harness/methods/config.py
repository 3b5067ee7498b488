"""Per-method settings, validated in specs (light: no torch import).

``uses_lambda`` tells the spec validator whether the method needs a ``lambda`` entry.
Every field here changes a number, so every field is recorded with the results.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, PositiveInt

from harness.spec.strict import StrictModel


class MethodParams(StrictModel):
    """Base of all method settings: unknown keys, inf/NaN and numbers written as strings
    are errors."""

    uses_lambda: ClassVar[bool] = True


class BaselineParams(MethodParams):
    uses_lambda: ClassVar[bool] = False


class MlmParams(MethodParams):
    """The task's masked-LM branch on, no regulariser (tasks with an MLM branch only)."""

    uses_lambda: ClassVar[bool] = False


class InterpolationParams(MethodParams):
    """Prediction = (1 - r) Q + r P_restricted with r = lambda / (1 + lambda)."""


class NoisingParams(MethodParams):
    """Each target is replaced, with probability r = lambda/(1+lambda), by a draw from the
    restricted model's prediction for its short context (the task's own noising, where
    it has one, at that probability)."""

    probability: Literal["lambda_ratio", "one_minus_ratio"] = Field(
        "lambda_ratio",
        description="the noising probability: lambda_ratio = lambda / (1 + lambda), as the "
        "paper's text reads (its weight r of the restricted model); one_minus_ratio = "
        "1 / (1 + lambda) = 1 - r, what the paper's Table 4 noising numbers behave like "
        "(0.4 at lambda 1.5)",
    )


class ReverseKdParams(MethodParams):
    """CE(P_restricted(.|short), Q(.|full)) as the regulariser."""


class ImmSampledParams(MethodParams):
    k: PositiveInt | None = Field(
        None,
        description="extended contexts sampled per item; null = all of them, weighted (exact)",
    )
    k_every: PositiveInt = Field(
        1,
        description="use the k-sample term every k_every-th step and a single-sample term "
        "on the others (the paper's LSTM schedule uses 5); 1 = k samples on every step",
    )
    single_sample: Literal["own", "sampled"] = Field(
        "own",
        description="the single sample of the steps between k-sample steps: 'own' = each "
        "item's own extended context (itself a draw from the multiset sharing its short "
        "context, so the term has the same expectation; no extra sampling or forward of "
        "other contexts), 'sampled' = a fresh draw from that multiset",
    )


class ImmSerializedParams(MethodParams):
    refresh_every: PositiveInt | Literal["size"] = Field(
        "size",
        description="steps between refreshes of the stale model and its induced model; "
        "'size' = the dataset size (the paper's choice for logistic regression)",
    )
