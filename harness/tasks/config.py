"""Settings shared by every task's params model (light: no torch import)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field


class TaskParams(BaseModel):
    """Base of all task params. Subclasses declare the metrics they report.

    ``metrics`` lists the metric names the task returns, the first being the default;
    ``higher_is_better`` says which way each one improves (used by reports and tuning);
    ``operational`` names fields that change how a cell runs but not its numbers (say,
    checkpointing): they are left out of the cell id, so switching them keeps old results.
    """

    model_config = ConfigDict(extra="forbid")
    metrics: ClassVar[tuple[str, ...]] = ()
    higher_is_better: ClassVar[dict[str, bool]] = {}
    operational: ClassVar[frozenset[str]] = frozenset()

    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="where tensors live; auto = cuda when available, else cpu"
    )
