"""Serialized IMM (paper Eq. 13, Alg. 2): a corrected cross-entropy with a stale model."""

from torch import Tensor

from harness.methods.base import Method
from harness.methods.induced import cross_entropy
from harness.tasks.base import Views


class ImmSerialized(Method):
    """term = -sum_y [Q_stale(y|x) / Qbar_stale(y|short)] P_restricted(y|short) log Q(y|x).

    The stale model and its induced model are refreshed every ``refresh_every`` steps
    ("size": every n steps, n the dataset size); the correction is not differentiated.
    Without the correction this is reverse-KD.
    """

    name = "imm_serialized"
    requires = frozenset({"restricted", "stale_correction"})
    regularises = True
    lambda_batch = True
    term_form = "stale_corrected_cross_entropy"

    def term(self, views: Views, step: int) -> Tensor:
        every = self.params.refresh_every
        every = views.refresh_period if every == "size" else every
        correction = views.stale_correction(refresh=step % every == 0)
        return cross_entropy(correction * views.restricted(), views.log_q())
