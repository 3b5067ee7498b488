"""Statistics for comparing methods: paired bootstrap intervals, win rates, ranks and the
data-equivalent gain. numpy only, and deterministic (a fixed bootstrap seed).

Pairing. A task whose params model declares ``paired_replicates = True`` gives replicate
i of a cell the same data and seeds under every method (harness/tasks/*/config.py: the
logistic toy, grid RL, PTB and GLUE all do). Two methods' values at one size are then
paired by (seed, replicate), and the interval of their difference comes from a bootstrap
that resamples those pairs. A task that does not declare it is compared over seeds: the
task contract draws a cell's data from its seed, so each seed's statistic (over its
replicates) is paired with the other method's at the same seed, and the seeds are
resampled. One pair leaves nothing to resample: the difference is shown with "n = 1, no
interval".

The statistic is the reports' (median by default, or mean): the difference at one size is
stat(method) - stat(reference) over the paired values, and each bootstrap draw resamples
the pairs (the same indices for both methods) and takes the same difference.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

BOOTSTRAP_SEED = 20241  # fixed: the same records always give the same intervals
RESAMPLES = 2000
MAX_RESAMPLES = 20000
STATS = ("median", "mean")

Key = tuple[int, int]  # (seed, replicate index)


def task_pairs_replicates(task: str) -> bool:
    """Whether the registered ``task`` declares paired replicates (unknown tasks: no)."""
    from harness.registry import TASKS

    if task not in TASKS:
        return False
    return bool(getattr(TASKS.config(task), "paired_replicates", False))


def replicate_values(records: Iterable[Mapping[str, Any]], metric: str
                     ) -> dict[tuple[str, int], dict[Key, float]]:
    """{(label, size): {(seed, replicate): value}} from the ok records; non-finite values
    are left out (so their pairs are too)."""
    out: dict[tuple[str, int], dict[Key, float]] = {}
    for record in records:
        if record.get("status") != "ok":
            continue
        label = str(record.get("label") or record["method"])
        cell = out.setdefault((label, int(record["size"])), {})
        seed = int(record.get("seed", 0))
        for i, value in enumerate(record.get("metrics", {}).get(metric, [])):
            value = float(value)
            if math.isfinite(value):
                cell[(seed, i)] = value
    return out


def statistic(values: np.ndarray, stat: str, axis: int = -1) -> np.ndarray:
    if stat == "median":
        return np.median(values, axis=axis)
    if stat == "mean":
        return np.mean(values, axis=axis)
    raise ValueError(f"unknown statistic {stat!r}; known: {', '.join(STATS)}")


@dataclass(frozen=True)
class Interval:
    """stat(a) - stat(b) over n pairs, with its bootstrap interval (None when n < 2)."""

    estimate: float | None
    low: float | None
    high: float | None
    n: int
    unit: str  # "replicates" or "seeds": what was paired and resampled
    confidence: float
    stat: str = "median"

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    @property
    def excludes_zero(self) -> bool:
        return self.has_interval and (self.low > 0 or self.high < 0)  # type: ignore[operator]

    def side(self, higher_is_better: bool = True) -> str:
        """'better', 'worse' (the interval excludes zero that way) or 'n.s.' (it does not,
        or there is no interval)."""
        if not self.excludes_zero:
            return "n.s."
        positive = self.low > 0  # type: ignore[operator]
        return "better" if positive == higher_is_better else "worse"

    @property
    def method(self) -> str:
        """How the interval was made, e.g. 'paired bootstrap over 300 replicates, 95%'."""
        if self.n == 0:
            return "no pairs"
        if not self.has_interval:
            return f"n = {self.n}, no interval"
        unit = self.unit if self.n != 1 else self.unit.rstrip("s")
        return f"paired bootstrap over {self.n} {unit}, {self.confidence:.0%}"

    def text(self, scale: float = 1.0, digits: int = 2) -> str:
        """'+1.23 [+0.45, +2.01]' ('*' when the interval excludes zero), or why not."""
        if self.estimate is None:
            return "no pairs"
        est = f"{scale * self.estimate:+.{digits}f}"
        if not self.has_interval:
            return f"{est} (n = {self.n}, no interval)"
        lo, hi = (f"{scale * v:+.{digits}f}" for v in (self.low, self.high))  # type: ignore
        return f"{est} [{lo}, {hi}]" + ("*" if self.excludes_zero else "")

    def as_dict(self) -> dict[str, Any]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "n": self.n,
                "unit": self.unit, "confidence": self.confidence, "stat": self.stat,
                "method": self.method, "excludes_zero": self.excludes_zero}


def paired_arrays(a: Mapping[Key, float], b: Mapping[Key, float], paired: bool,
                  stat: str = "median") -> tuple[np.ndarray, np.ndarray, str]:
    """The two methods' values on their common pairs: by (seed, replicate) when the task
    pairs replicates, else each seed's ``stat`` over its replicates, by seed."""
    if paired:
        keys = sorted(set(a) & set(b))
        return (np.array([a[k] for k in keys], dtype=float),
                np.array([b[k] for k in keys], dtype=float), "replicates")
    seeds = sorted({s for s, _ in a} & {s for s, _ in b})

    def per_seed(values: Mapping[Key, float], seed: int) -> float:
        return float(statistic(np.array([v for (s, _), v in values.items() if s == seed]),
                               stat))

    return (np.array([per_seed(a, s) for s in seeds], dtype=float),
            np.array([per_seed(b, s) for s in seeds], dtype=float), "seeds")


def paired_difference(a: Mapping[Key, float], b: Mapping[Key, float], paired: bool,
                      stat: str = "median", confidence: float = 0.95,
                      resamples: int | None = None) -> Interval:
    """stat(a) - stat(b) on the common pairs with a paired percentile-bootstrap interval.
    Over seeds (unpaired replicates) the estimate is the mean of the per-seed differences.
    ``resamples``: default RESAMPLES, more when the confidence asks for far tails."""
    if not 0 < confidence < 1:
        raise ValueError("confidence must lie strictly between 0 and 1")
    x, y, unit = paired_arrays(a, b, paired, stat)
    n = int(x.size)
    if n == 0:
        return Interval(None, None, None, 0, unit, confidence, stat)
    by_seed = unit == "seeds"
    estimate = float(np.mean(x - y)) if by_seed else float(statistic(x, stat) -
                                                            statistic(y, stat))
    if n < 2:
        return Interval(estimate, None, None, n, unit, confidence, stat)
    draws = resamples or resamples_for(confidence)
    idx = np.random.default_rng(BOOTSTRAP_SEED).integers(0, n, size=(draws, n))
    if by_seed or stat == "mean":
        boot = np.mean((x - y)[idx], axis=1)
    else:
        boot = statistic(x[idx], stat, axis=1) - statistic(y[idx], stat, axis=1)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(boot, [tail, 100 - tail])
    return Interval(estimate, float(low), float(high), n, unit, confidence, stat)


def resamples_for(confidence: float) -> int:
    """Enough bootstrap draws that each tail holds at least 25 of them."""
    tail = (1 - confidence) / 2
    return int(min(MAX_RESAMPLES, max(RESAMPLES, math.ceil(25 / tail))))


# ---- win rates and ranks -----------------------------------------------------------------
def better(a: float, b: float, higher_is_better: bool) -> float:
    """1 if a beats b, 0.5 on a tie, 0 otherwise (direction-aware)."""
    if a == b:
        return 0.5
    return 1.0 if (a > b) == higher_is_better else 0.0


def win_rates(columns: Sequence[tuple[Mapping[str, float], bool]]
              ) -> tuple[dict[str, float | None], dict[str, dict[str, tuple[float, int]]]]:
    """Mean win rate per method, as HELM computes it over pairs of methods: for each other
    method, the share of the columns both have in which this one is better (ties count
    half), averaged over the other methods with at least one shared column.

    ``columns``: ({label: value} of the methods with a value there, higher_is_better).
    Returns (mean win rate or None, {label: {other: (win rate, shared columns)}})."""
    labels = list(dict.fromkeys(label for values, _ in columns for label in values))
    pairwise: dict[str, dict[str, tuple[float, int]]] = {lb: {} for lb in labels}
    for label in labels:
        for other in labels:
            if other == label:
                continue
            shared = [(values[label], values[other], higher) for values, higher in columns
                      if label in values and other in values]
            if shared:
                wins = sum(better(a, b, h) for a, b, h in shared)
                pairwise[label][other] = (wins / len(shared), len(shared))
    mean = {lb: (float(np.mean([r for r, _ in pairwise[lb].values()]))
                 if pairwise[lb] else None) for lb in labels}
    return mean, pairwise


def ranks(values: Mapping[str, float], higher_is_better: bool) -> dict[str, float]:
    """Rank 1 = best; ties share the mean of their ranks."""
    ordered = sorted(values, key=lambda lb: -values[lb] if higher_is_better else values[lb])
    out: dict[str, float] = {}
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and values[ordered[j + 1]] == values[ordered[i]]:
            j += 1
        for label in ordered[i:j + 1]:
            out[label] = (i + j) / 2 + 1
        i = j + 1
    return out


# ---- data-equivalent gain ----------------------------------------------------------------
@dataclass(frozen=True)
class GainPoint:
    size: int
    value: float  # the method's statistic at this size
    equivalent: float | None  # the size at which the reference reaches it
    gain: float | None  # percent extra data: 100 (equivalent / size - 1)
    note: str = ""


@dataclass(frozen=True)
class Gain:
    points: tuple[GainPoint, ...]

    @property
    def defined(self) -> list[GainPoint]:
        return [p for p in self.points if p.gain is not None]

    @property
    def mean(self) -> float | None:
        """Mean percent extra data over the sizes where it is defined."""
        gains = [p.gain for p in self.defined]
        return float(np.mean(gains)) if gains else None

    def text(self) -> str:
        mean = self.mean
        if mean is None:
            return f"undefined at all {len(self.points)} sizes"
        return f"{mean:+.1f}% (mean over {len(self.defined)} of {len(self.points)} sizes)"


def isotonic(values: Sequence[float]) -> np.ndarray:
    """The non-decreasing least-squares fit (pool adjacent violators, equal weights)."""
    blocks: list[list[float]] = []  # [sum, count]
    for v in values:
        blocks.append([float(v), 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, c = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += c
    return np.concatenate([np.full(int(c), s / c) for s, c in blocks])


def equivalent_size(ref_sizes: Sequence[float], ref_values: Sequence[float], value: float,
                    higher_is_better: bool = True) -> tuple[float | None, str]:
    """The smallest size at which the reference's curve reaches ``value``: the curve is
    the reference's isotonic fit (better with more data), interpolated linearly in log
    size, so it is monotone and can be inverted; no extrapolation beyond its sizes.
    Returns (size or None, why none)."""
    order = np.argsort(np.asarray(ref_sizes, dtype=float))
    sizes = np.asarray(ref_sizes, dtype=float)[order]
    sign = 1.0 if higher_is_better else -1.0
    curve = isotonic(sign * np.asarray(ref_values, dtype=float)[order])
    target = sign * value
    if sizes.size < 2:
        return None, "the reference has fewer than two sizes"
    if target < curve[0]:
        return None, f"worse than the reference at its smallest size ({sizes[0]:g})"
    if target > curve[-1]:
        return None, f"better than the reference at its largest size ({sizes[-1]:g})"
    logs = np.log(sizes)
    for j in range(sizes.size):
        if curve[j] == target:
            return float(sizes[j]), ""
        if j + 1 < sizes.size and curve[j] < target < curve[j + 1]:
            t = (target - curve[j]) / (curve[j + 1] - curve[j])
            return float(math.exp(logs[j] + t * (logs[j + 1] - logs[j]))), ""
    return None, "not reached"  # unreachable: target lies within [curve[0], curve[-1]]


def data_equivalent_gain(ref: Mapping[int, float], method: Mapping[int, float],
                         higher_is_better: bool = True) -> Gain:
    """At each size n the method has: the size at which the reference's curve reaches
    the method's value, as percent extra data 100 (n_eq / n - 1); see equivalent_size.
    ``ref`` and ``method``: {size: statistic}."""
    sizes, values = list(ref), [ref[n] for n in ref]
    points = []
    for n in sorted(method):
        eq, why = equivalent_size(sizes, values, method[n], higher_is_better)
        gain = None if eq is None else 100.0 * (eq / n - 1.0)
        points.append(GainPoint(n, float(method[n]), eq, gain, why))
    return Gain(tuple(points))
