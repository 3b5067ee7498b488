"""The induced model and its cross-entropy with the crosstalk gradient (paper App. C.2).

The induced prediction for a short context is a weighted average of the full model's
predictions over extended contexts sharing it: Qbar(y) = sum_j w_j Q_j(y). The IMM term
is -sum_y P(y) log Qbar(y). Its gradient is the "crosstalk" decomposition

    grad = -sum_y P(y) sum_j c_j(y) grad log Q_j(y),   c_j(y) = w_j Q_j(y) / Qbar(y),

whose weights need no differentiation, so each extended context's gradient can be
computed separately and accumulated. Here it is written with c_j(y) grad log Q_j(y) =
(w_j / Qbar(y)) grad Q_j(y), which avoids taking logs of every component.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

EPS = 1e-12


@dataclass
class Induced:
    """Full-model predictions over extended contexts that share each item's short context.

    ``probs``: (..., K, C) class probabilities Q(y | short, extended_j), or (..., K) for a
    binary task, holding the probability of class 1 (class 0 is its complement; this
    halves the work for the logistic toy). ``weights``: (..., K), summing to 1 over K.
    """

    probs: Tensor
    weights: Tensor

    @property
    def binary(self) -> bool:
        return self.probs.dim() == self.weights.dim()

    def mixture(self) -> Tensor:
        """Qbar(y | short): (..., C)."""
        if self.binary:
            p1 = (self.weights * self.probs).sum(-1)
            return torch.stack([1.0 - p1, p1], -1)
        return (self.weights.unsqueeze(-1) * self.probs).sum(-2)


def crosstalk_cross_entropy(target: Tensor, induced: Induced) -> Tensor:
    """Per-item -sum_y target(y) log Qbar(y), differentiated by the crosstalk decomposition.

    The returned tensor has the true value; its gradient is sum over components of the
    crosstalk-weighted component gradients (equal to autograd's gradient of the value).
    """
    with torch.no_grad():
        mix = induced.mixture().clamp_min(EPS)
        value = -(target * mix.log()).sum(-1)
        ratio = target / mix  # P(y) / Qbar(y): the crosstalk weight divided by Q_j(y) w_j
    if induced.binary:
        # d/dq1 of the binary components: q0 = 1 - q1, so the class-0 weight enters negated.
        coef = (ratio[..., 1] - ratio[..., 0]).unsqueeze(-1) * induced.weights
        surrogate = -(coef * induced.probs).sum(-1)
    else:
        coef = ratio.unsqueeze(-2) * induced.weights.unsqueeze(-1)
        surrogate = -(coef * induced.probs).sum((-1, -2))
    return value + surrogate - surrogate.detach()


def cross_entropy(target: Tensor, log_probs: Tensor) -> Tensor:
    """Per-item -sum_y target(y) log Q(y)."""
    return -(target * log_probs).sum(-1)
