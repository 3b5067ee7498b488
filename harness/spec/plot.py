"""The spec's ``plot:`` section: how the report draws its figures (presentation only:
not in any cell id, so changing it never reruns a cell)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.spec.strict import StrictModel


class PlotSettings(StrictModel):
    """Figures of the report: one per metric, metric against dataset size, one line per
    method through the mean, bars from the 10th to the 90th percentile."""

    title: str | None = Field(
        None, description="figure title ({metric} is replaced by the metric's name); "
        "default: none (a paper's caption says it)")
    x_scale: Literal["auto", "log", "linear"] = Field(
        "auto", description="size axis: auto = log when the sizes span a decade or more")
    y_scale: Literal["linear", "log"] = "linear"
    methods: list[str] | None = Field(
        None, description="method labels to draw, in this order (default: all, in the "
        "spec's order)")
    labels: dict[str, str] = Field(
        default_factory=dict, description="legend names by method label, e.g. "
        "{imm: 'IMM (ours)'}")
    x_label: str = Field("dataset size N", description="the size axis' label")
    y_labels: dict[str, str] = Field(
        default_factory=dict, description="axis labels by metric, e.g. {accuracy: "
        "'test accuracy (%)'}; default: the metric's name and unit")

    def problems(self, labels: list[str], metrics: tuple[str, ...] | list[str]) -> list[str]:
        """One line per method label or metric this section names that the spec lacks."""
        out = []
        known = ", ".join(labels)
        for field, names in (("methods", self.methods or []), ("labels", list(self.labels))):
            out += [f"plot.{field}: unknown method label {name!r} (labels: {known})"
                    for name in names if name not in labels]
        if self.methods is not None and len(set(self.methods)) != len(self.methods):
            out.append("plot.methods: a label is named twice")
        out += [f"plot.y_labels: unknown metric {name!r} (metrics: {', '.join(metrics)})"
                for name in self.y_labels if name not in metrics]
        return out
