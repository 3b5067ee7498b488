"""PS-KD's settings (light: pydantic only)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from harness.methods.config import MethodParams


class PsKdParams(MethodParams):
    """a_t = alpha_T * (t / T): the weight of the previous epoch's prediction grows
    linearly with training progress (Kim et al. use alpha_T = 0.8)."""

    uses_lambda: ClassVar[bool] = False
    alpha_T: float = Field(0.8, ge=0.0, le=1.0, description="a_t at the end of training")
