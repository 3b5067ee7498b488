"""The induced model and its cross-entropy with the crosstalk gradient (paper App. C.2).

The induced prediction for a short context is a weighted average of the full model's
predictions over extended contexts sharing it: Qbar(y) = sum_j w_j Q_j(y). The IMM term
is -sum_y P(y) log Qbar(y). Its gradient is the "crosstalk" decomposition

    grad = -sum_y P(y) sum_j c_j(y) grad log Q_j(y),   c_j(y) = w_j Q_j(y) / Qbar(y),

whose weights need no differentiation, so each extended context's gradient can be
computed separately and accumulated (memory does not grow with k). Since
c_j(y) grad log Q_j(y) = (w_j / Qbar(y)) grad Q_j(y), it is computed here as the gradient
of the surrogate -sum_y [P(y) / Qbar(y)]_detached * sum_j w_j Q_j(y), which is separable
over j and takes no log of any component.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

EPS = 1e-12


@dataclass
class Induced:
    """Full-model predictions over extended contexts that share a short context.

    ``probs``: (rows, K, C) class probabilities Q(y | short, extended_j), or (rows, K) for
    a binary task, holding the probability of class 1 (class 0 is its complement; this
    halves the work for the logistic toy). ``weights``: (rows, K), summing to 1 over K.
    ``index``: optional item -> row map (any shape), so that items sharing a short context
    share one induced prediction (one per distinct previous word in an LM batch); without
    it, rows are the items themselves. ``rows`` may be any leading shape.
    """

    probs: Tensor
    weights: Tensor
    index: Tensor | None = None

    @property
    def binary(self) -> bool:
        return self.probs.dim() == self.weights.dim()

    def mixture(self) -> Tensor:
        """Qbar(y | short) per row: (rows, C); differentiable."""
        if self.binary:
            p1 = (self.weights * self.probs).sum(-1)
            return torch.stack([1.0 - p1, p1], -1)
        return (self.weights.unsqueeze(-1) * self.probs).sum(-2)

    def per_item(self) -> Tensor:
        """Qbar(y | short) per item: (items, C)."""
        mix = self.mixture()
        return mix if self.index is None else mix[self.index]


def crosstalk_cross_entropy(target: Tensor, induced: Induced) -> Tensor:
    """Per-item -sum_y target(y) log Qbar(y), differentiated by the crosstalk decomposition.

    The returned tensor has the true value; its gradient is the crosstalk-weighted sum of
    the components' gradients (equal to autograd's gradient of the value).
    """
    mix = induced.per_item()
    with torch.no_grad():
        safe = mix.detach().clamp_min(EPS)
        value = -(target * safe.log()).sum(-1)
        ratio = target / safe
    surrogate = -(ratio * mix).sum(-1)
    return value + surrogate - surrogate.detach()


def cross_entropy(target: Tensor, log_probs: Tensor) -> Tensor:
    """Per-item -sum_y target(y) log Q(y)."""
    return -(target * log_probs).sum(-1)
