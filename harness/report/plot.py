"""Figures in the style of the paper's Figure 1: a metric against dataset size, one line
per method through the mean, with a vertical bar from the 10th to the 90th percentile.

Paper-ready by default: the size axis is logarithmic when the sizes span a decade or more
(the small sizes, where methods differ, are not crushed); methods are shifted slightly
along it (by a constant factor on a log axis) so that their bars do not hide each other;
with a single size the methods stand side by side on a categorical axis instead. Bars
are drawn directly from p10 to p90 (not as offsets from the mean), so they stay correct
when the mean lies outside the interval. The spec's ``plot:`` section
(harness.spec.plot.PlotSettings) sets the title, the scales, which methods and the
labels. Every figure can be written as PNG, SVG and PDF (fonts embedded as TrueType).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.report.load import Pooled, ResultSet, display_scale, runs_text
from harness.spec.plot import PlotSettings

FORMATS = (".png", ".svg", ".pdf")
DECADE = 10.0  # sizes spanning this factor or more get a log axis (x_scale: auto)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
RC = {"pdf.fonttype": 42, "ps.fonttype": 42, "font.size": 10, "axes.titlesize": 11,
      "axes.spines.top": False, "axes.spines.right": False, "legend.frameon": False,
      "savefig.bbox": "tight"}


def plot_settings(rs: ResultSet) -> PlotSettings:
    """The ``plot:`` section of the spec as run (defaults when it has none)."""
    return PlotSettings.model_validate(rs.spec.get("plot") or {})


def log_axis(sizes: Sequence[int], scale: str = "auto") -> bool:
    """Whether the size axis is logarithmic: asked for, or (auto) a decade or more."""
    if scale != "auto":
        return scale == "log"
    return len(sizes) > 1 and max(sizes) / max(min(sizes), 1) >= DECADE


def method_offsets(sizes: Sequence[int], n_methods: int, log: bool = False) -> np.ndarray:
    """Each method's shift along the size axis: in decades on a log axis (x * 10**d),
    else in sizes; small against both the narrowest gap and the axis' range."""
    ordered = np.sort(np.asarray(sizes, dtype=float))
    if log:
        ordered = np.log10(np.maximum(ordered, 1e-12))
    gaps = np.diff(ordered)
    if gaps.size:
        span = float(np.ptp(ordered))
        width = min(0.45 * float(gaps.min()) / max(n_methods, 1), 0.025 * span)
    else:
        width = 0.02 if log else 0.02 * max(float(ordered[0]), 1.0)
    return (np.arange(n_methods) - (n_methods - 1) / 2) * width


def shown_labels(rs: ResultSet, settings: PlotSettings) -> list[str]:
    """The method labels drawn, in order: the section's ``methods``, else all."""
    return [m for m in settings.methods if m in rs.labels] if settings.methods else \
        list(rs.labels)


@dataclass(frozen=True)
class _Series:
    label: str
    name: str  # in the legend
    x: np.ndarray
    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


def _series(rs: ResultSet, metric: str, settings: PlotSettings
            ) -> tuple[list[_Series], list[str], int, str, str]:
    """The drawn methods' points, the labels with none, cells not shown, unit, runs."""
    pooled = rs.pooled(metric)
    scale, unit = display_scale(metric, pooled)
    out, empty, not_shown = [], [], 0
    for label in shown_labels(rs, settings):
        cells: list[Pooled] = [pooled[(label, size)] for size in rs.sizes]
        ok = [p for p in cells if p.status == "ok"]
        not_shown += sum(p.status in ("failed", "skipped") for p in cells)
        if not ok:
            empty.append(label)
            continue
        stats = {s: np.array([scale * p.stat(s) for p in ok]) for s in ("mean", "p10", "p90")}
        out.append(_Series(label, settings.labels.get(label, label),
                           np.array([p.size for p in ok], dtype=float),
                           stats["mean"], stats["p10"], stats["p90"]))
    return out, empty, not_shown, unit, runs_text(pooled)


def figure(rs: ResultSet, metric: str, settings: PlotSettings | None = None) -> Any:
    """The matplotlib Figure of ``metric`` (see the module docstring)."""
    plt = _pyplot()
    settings = settings or plot_settings(rs)
    series, empty, not_shown, unit, runs = _series(rs, metric, settings)
    categorical = len(rs.sizes) == 1
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=(6.4, 4.2) if not categorical else
                               (max(4.0, 1.2 + 1.1 * max(len(series), 1)), 4.2))
        if categorical:
            _draw_categorical(ax, series)
            ax.set_xlabel(f"method (N = {rs.sizes[0]})")
        else:
            _draw_sizes(ax, series, rs.sizes, settings)
            ax.set_xlabel(settings.x_label)
        ax.set_yscale(settings.y_scale)
        ax.set_ylabel(settings.y_labels.get(metric, f"{metric}{unit}"))
        if settings.title:
            ax.set_title(settings.title.replace("{metric}", metric))
        ax.grid(alpha=0.25, linewidth=0.6)
        notes = [f"bars: 10th-90th percentile of {runs}"]
        if not_shown:
            notes.append(f"{not_shown} failed/skipped cells not shown")
        if empty:
            notes.append(f"no results: {', '.join(empty)}")
        if series and not categorical:
            ax.legend(title="; ".join(notes), title_fontsize=8, fontsize=9)
        else:
            ax.text(0.0, 1.01, "; ".join(notes), transform=ax.transAxes, fontsize=8,
                    va="bottom", color="0.35")
        fig.tight_layout()
    return fig


def _draw_sizes(ax: Any, series: list[_Series], sizes: Sequence[int],
                settings: PlotSettings) -> None:
    log = log_axis(sizes, settings.x_scale)
    offsets = method_offsets(sizes, len(series), log)
    for i, (s, dx) in enumerate(zip(series, offsets, strict=True)):
        x = s.x * 10.0 ** dx if log else s.x + dx
        (line,) = ax.plot(x, s.mean, marker=MARKERS[i % len(MARKERS)], markersize=4.5,
                          linewidth=1.4, label=s.name)
        ax.vlines(x, s.lo, s.hi, color=line.get_color(), linewidth=1.2, alpha=0.85)
        ax.scatter(np.r_[x, x], np.r_[s.lo, s.hi], marker="_", color=line.get_color(), s=18)
    if log:
        ax.set_xscale("log")
        ax.minorticks_off()
    ax.set_xticks(list(sizes), [str(n) for n in sizes])


def _draw_categorical(ax: Any, series: list[_Series]) -> None:
    """One size: each method at its own place on the x axis, mean and p10-p90 bar."""
    for i, s in enumerate(series):
        color = f"C{i}"
        ax.vlines([i], s.lo, s.hi, color=color, linewidth=2.0, alpha=0.85)
        ax.scatter([i, i], np.r_[s.lo, s.hi], marker="_", color=color, s=120)
        ax.plot([i], s.mean, marker=MARKERS[i % len(MARKERS)], color=color, markersize=7)
    ax.set_xticks(range(len(series)), [s.name for s in series])
    ax.set_xlim(-0.6, max(len(series), 1) - 0.4)


def plot_metric(rs: ResultSet, metric: str, path: str | Path,
                settings: PlotSettings | None = None) -> Path:
    """Write the figure of ``metric`` to ``path`` (its suffix picks PNG, SVG or PDF)."""
    plt = _pyplot()
    fig = figure(rs, metric, settings)
    path = Path(path)
    _save(fig, path)
    plt.close(fig)
    return path


def write_plots(rs: ResultSet, folder: str | Path, metrics: Sequence[str],
                formats: Sequence[str] = FORMATS) -> list[Path]:
    """``<folder>/<metric>.png|.svg|.pdf`` for every metric; returns the paths written."""
    plt = _pyplot()
    settings = plot_settings(rs)
    out = []
    for metric in metrics:
        fig = figure(rs, metric, settings)
        for suffix in formats:
            path = Path(folder) / f"{metric}{suffix}"
            _save(fig, path)
            out.append(path)
        plt.close(fig)
    return out


def _save(fig: Any, path: Path) -> None:
    """The figure into ``path`` (format by its suffix), written atomically and never
    through a symbolic link (harness.atomic)."""
    from harness.atomic import atomic_write_bytes

    out = io.BytesIO()
    with _pyplot().rc_context(RC):
        fig.savefig(out, dpi=150, metadata=_metadata(path),
                    format=path.suffix.lstrip(".").lower() or "png")
    atomic_write_bytes(path, out.getvalue())


def plot_png(rs: ResultSet, metric: str, dpi: int = 110) -> bytes:
    """The figure of ``metric`` as PNG bytes (for pages that inline it)."""
    plt = _pyplot()
    fig = figure(rs, metric)
    out = io.BytesIO()
    with plt.rc_context(RC):
        fig.savefig(out, format="png", dpi=dpi)
    plt.close(fig)
    return out.getvalue()


def _metadata(path: Path) -> dict[str, Any]:
    """No creation dates in SVG and PDF files: the same records give the same bytes."""
    if path.suffix.lower() == ".svg":
        return {"Date": None}
    if path.suffix.lower() == ".pdf":
        return {"CreationDate": None}
    return {}


def _pyplot() -> Any:  # matplotlib.pyplot on the non-interactive Agg backend
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
