"""GLUE metrics, each task with GLUE's own: Matthews correlation and accuracy (CoLA),
accuracy (SST-2, MNLI, QNLI, RTE, WNLI), F1 of class 1 and accuracy (MRPC, QQP), Pearson
and Spearman correlation (STS-B, a regression task). Vectorised over replicates: ``pred``
and ``gold`` may be (n,) or (runs, n) numpy arrays or torch tensors (class ids, or float
scores for STS-B); the result has the leading shape (a float for 1-D input, (runs,)
otherwise).

Degenerate cases follow scikit-learn where it defines them: MCC = 0 when any marginal is
empty, F1 = 0 when tp = fp = fn = 0 would divide by zero; by the same convention a
correlation with a constant prediction (or constant gold scores) is 0, not NaN.
Spearman's correlation is Pearson's of the ranks, ties given their average rank (as
``scipy.stats.spearmanr``), computed here in numpy so scipy is not needed.
"""

from __future__ import annotations

import numpy as np

METRICS = {
    "cola": ("mcc", "accuracy"),
    "sst2": ("accuracy",),
    "mrpc": ("f1", "accuracy"),
    "stsb": ("pearson", "spearman"),
    "qqp": ("f1", "accuracy"),
    "mnli": ("accuracy",),
    "qnli": ("accuracy",),
    "rte": ("accuracy",),
    "wnli": ("accuracy",),
}
"""Per task: the metric names (per evaluation set; MNLI's are prefixed m_ and mm_)."""


def _numpy(x) -> np.ndarray:
    return np.asarray(x.detach().cpu() if hasattr(x, "detach") else x)


def _arrays(pred, gold) -> tuple[np.ndarray, np.ndarray]:
    p, g = _numpy(pred).astype(np.int64), _numpy(gold).astype(np.int64)
    p, g = np.broadcast_arrays(p, g)
    return p, g


def confusion(pred, gold) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(tp, fp, fn, tn) counts over the last axis, class 1 positive."""
    p, g = _arrays(pred, gold)
    tp = ((p == 1) & (g == 1)).sum(-1)
    fp = ((p == 1) & (g == 0)).sum(-1)
    fn = ((p == 0) & (g == 1)).sum(-1)
    tn = ((p == 0) & (g == 0)).sum(-1)
    return tp, fp, fn, tn


def accuracy(pred, gold):
    p, g = _arrays(pred, gold)
    return (p == g).mean(-1)


def f1(pred, gold):
    tp, fp, fn, _ = (c.astype(np.float64) for c in confusion(pred, gold))
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1.0), 0.0)


def matthews(pred, gold):
    tp, fp, fn, tn = (c.astype(np.float64) for c in confusion(pred, gold))
    denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return np.where(denom > 0, (tp * tn - fp * fn) / np.where(denom > 0, denom, 1.0), 0.0)


def _floats(pred, gold) -> tuple[np.ndarray, np.ndarray]:
    p, g = _numpy(pred).astype(np.float64), _numpy(gold).astype(np.float64)
    return np.broadcast_arrays(p, g)


def pearson(pred, gold):
    """Pearson's r over the last axis (0 when either side is constant)."""
    p, g = _floats(pred, gold)
    dp = p - p.mean(-1, keepdims=True)
    dg = g - g.mean(-1, keepdims=True)
    denom = np.sqrt((dp * dp).sum(-1) * (dg * dg).sum(-1))
    num = (dp * dg).sum(-1)
    return np.where(denom > 0, num / np.where(denom > 0, denom, 1.0), 0.0)


def rankdata(x) -> np.ndarray:
    """Ranks 1..n over the last axis, ties given their average rank (scipy's 'average')."""
    a = _numpy(x).astype(np.float64)
    flat = a.reshape(-1, a.shape[-1]) if a.ndim else a.reshape(1, 1)
    out = np.empty_like(flat)
    for row, values in enumerate(flat):
        order = np.argsort(values, kind="stable")
        ordered = values[order]
        # boundaries of runs of equal values; each run's members share the mean rank
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        ends = np.r_[starts[1:], len(values)]
        mean_rank = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
        out[row, order] = np.repeat(mean_rank, ends - starts)
    return out.reshape(a.shape)


def spearman(pred, gold):
    """Spearman's rho over the last axis: Pearson's r of the average ranks."""
    p, g = _floats(pred, gold)
    return pearson(rankdata(p), rankdata(g))


FUNCTIONS = {"accuracy": accuracy, "f1": f1, "mcc": matthews, "pearson": pearson,
             "spearman": spearman}


def task_metrics(task: str, pred, gold) -> dict[str, np.ndarray]:
    """{metric: value(s)} for a GLUE task (names from ``METRICS``)."""
    return {name: np.asarray(FUNCTIONS[name](pred, gold)) for name in METRICS[task.lower()]}
