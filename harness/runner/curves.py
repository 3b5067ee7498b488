"""A cell's learning curves: the progress callable a task receives (through
``harness.tasks.kit.ProgressMeter``) passes fractions on to the runner's bar and keeps the
per-epoch metrics the task reports, which go into the record as ``curves`` and from there
to MLflow as step metrics."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any


class CellProgress:
    """Callable with a fraction of the cell done; ``curve`` keeps per-epoch metrics."""

    def __init__(self, report: Callable[[float], Any] | None = None) -> None:
        self.report = report
        self._points: dict[str, dict[int, list[float]]] = {}

    def __call__(self, fraction: float) -> None:
        if self.report is not None:
            self.report(fraction)

    def curve(self, step: int, run: int, values: Mapping[str, float]) -> None:
        """Metrics of replicate ``run`` after ``step`` epochs (batched tasks: their mean)."""
        for name, value in values.items():
            self._points.setdefault(name, {}).setdefault(int(step), []).append(float(value))

    def curves(self) -> dict[str, dict[str, list[Any]]]:
        """{metric: {"steps": [...], "values": [...]}}: at each step the mean over the
        replicates that reached it; None where it is not finite (a diverging cell: records
        are strict JSON)."""
        out: dict[str, dict[str, list[Any]]] = {}
        for name, points in self._points.items():
            steps = sorted(points)
            means = [sum(points[s]) / len(points[s]) for s in steps]
            out[name] = {"steps": steps,
                         "values": [m if math.isfinite(m) else None for m in means]}
        return out
