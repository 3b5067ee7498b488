"""GLUE metrics (paper Table 2): Matthews correlation (CoLA), F1 of class 1 and accuracy
(MRPC), accuracy (RTE, QNLI). Vectorised over replicates: ``pred`` and ``gold`` may be
(n,) or (runs, n) numpy arrays or torch tensors of 0/1 labels; the result has the
leading shape (a float for 1-D input, (runs,) otherwise). Degenerate cases follow
scikit-learn: MCC = 0 when any marginal is empty, F1 = 0 when tp = fp = fn = 0 would
divide by zero."""

from __future__ import annotations

import numpy as np

METRICS = {
    "cola": ("mcc", "accuracy"),
    "mrpc": ("f1", "accuracy"),
    "rte": ("accuracy",),
    "qnli": ("accuracy",),
}
"""Per task: the metric names, the first being the paper's (Table 2)."""


def _arrays(pred, gold) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred.detach().cpu() if hasattr(pred, "detach") else pred).astype(np.int64)
    g = np.asarray(gold.detach().cpu() if hasattr(gold, "detach") else gold).astype(np.int64)
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


FUNCTIONS = {"accuracy": accuracy, "f1": f1, "mcc": matthews}


def task_metrics(task: str, pred, gold) -> dict[str, np.ndarray]:
    """{metric: value(s)} for a GLUE task (names from ``METRICS``)."""
    return {name: np.asarray(FUNCTIONS[name](pred, gold)) for name in METRICS[task.lower()]}
