"""A PNG in the style of the paper's Figure 1: metric against dataset size, one line per
method through the mean, with a vertical bar from the 10th to the 90th percentile.

Bars are drawn directly from p10 to p90 (not as errorbar offsets from the mean), so they
stay correct when the mean lies outside the percentile interval; methods are shifted
slightly in x so that their bars do not hide each other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.report.load import ResultSet, display_scale, runs_text


def method_offsets(sizes: tuple[int, ...], n_methods: int) -> np.ndarray:
    """x offset of each method: small against both the narrowest gap and the x range."""
    ordered = np.sort(np.asarray(sizes, dtype=float))
    gaps = np.diff(ordered)
    if gaps.size:
        width = min(0.25 * float(gaps.min()) / max(n_methods, 1), 0.015 * float(np.ptp(ordered)))
    else:
        width = 0.02 * max(float(ordered[0]), 1.0)
    return (np.arange(n_methods) - (n_methods - 1) / 2) * width


def plot_metric(rs: ResultSet, metric: str, path: str | Path) -> Path:
    """Write the plot of ``metric`` to ``path`` (PNG) and return the path."""
    plt = _pyplot()
    fig = _figure(rs, metric)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_png(rs: ResultSet, metric: str, dpi: int = 96) -> bytes:
    """The plot of ``metric`` as PNG bytes (for pages that inline it)."""
    import io

    plt = _pyplot()
    fig = _figure(rs, metric)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=dpi)
    plt.close(fig)
    return out.getvalue()


def _pyplot():  # matplotlib.pyplot on the non-interactive Agg backend
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _figure(rs: ResultSet, metric: str):  # a matplotlib Figure
    plt = _pyplot()

    pooled = rs.pooled(metric)
    scale, unit = display_scale(metric, pooled)
    offsets = method_offsets(rs.sizes, len(rs.labels))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    not_shown = 0
    for label, dx in zip(rs.labels, offsets, strict=True):
        cells = [pooled[(label, size)] for size in rs.sizes]
        ok = [p for p in cells if p.status == "ok"]
        not_shown += sum(p.status in ("failed", "skipped") for p in cells)
        if not ok:
            continue
        x = np.array([p.size for p in ok], dtype=float) + dx
        mean, lo, hi = (np.array([scale * p.stat(s) for p in ok]) for s in ("mean", "p10", "p90"))
        (line,) = ax.plot(x, mean, marker="o", markersize=4, label=label)
        ax.vlines(x, lo, hi, color=line.get_color(), linewidth=1.2, alpha=0.8)
        ax.scatter(np.r_[x, x], np.r_[lo, hi], marker="_", color=line.get_color(), s=40)
    ax.set_xlabel("dataset size N")
    ax.set_ylabel(f"{metric}{unit}")
    note = f"; {not_shown} failed/skipped cells not shown" if not_shown else ""
    ax.set_title(f"{rs.name}: {metric}\nbars: 10th-90th percentile, {runs_text(pooled)}{note}")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    fig.tight_layout()
    return fig
