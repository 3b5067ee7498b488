"""Progressive self-knowledge distillation (Kim et al., ICCV 2021).

The targets are (1 - a_t) one-hot(y) + a_t Q_{t-1}(.|x): the model's own prediction of
the previous epoch softens them, more and more as training goes on (a_t = alpha_T t/T).
With the primary loss P (cross-entropy on the labels, or the task's own primary loss)
the objective is (1 - a_t) P + a_t CE(Q_{t-1}(.|x), Q(.|x)).

Written against harness's public contract only: it requires the capability
``stale_prediction`` (``Views.stale_log_q``: a snapshot of the model, re-taken here at the
start of every epoch) and reads ``Views.epoch`` and ``Views.progress``; it needs no
restricted model.
"""

from __future__ import annotations

from torch import Tensor

from harness.methods.base import Method
from harness.methods.induced import cross_entropy
from harness.tasks.base import Views


class ProgressiveSelfKD(Method):
    """term = CE(Q_previous-epoch(.|x), Q(.|x)), weights (1 - a_t, a_t)."""

    name = "pskd"
    requires = frozenset({"stale_prediction"})
    regularises = True

    def __init__(self, params, lam) -> None:  # noqa: ANN001 - as Method
        super().__init__(params, lam)
        self._epoch: int | None = None

    def term(self, views: Views, step: int) -> Tensor:
        new_epoch = views.epoch != self._epoch
        self._epoch = views.epoch
        previous = views.stale_log_q(refresh=new_epoch).exp()
        return cross_entropy(previous, views.log_q())

    def weights(self, views: Views, step: int) -> tuple[float, float]:
        a = self.params.alpha_T * views.progress
        return 1.0 - a, a
