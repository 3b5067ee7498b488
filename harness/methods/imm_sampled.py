"""Sampled IMM (paper Eq. 12, Alg. 1): match the restricted model to the induced model."""

from torch import Tensor

from harness.methods.base import Method
from harness.methods.induced import crosstalk_cross_entropy
from harness.tasks.base import Views


class ImmSampled(Method):
    """term = CE(P_restricted(.|short), Qbar(.|short)), Qbar = the full model averaged over
    extended contexts sharing the short context: all of them with the task's weights
    (k = null), or k sampled ones; a single sample on steps between every k_every-th."""

    name = "imm_sampled"

    def term(self, views: Views, step: int) -> Tensor:
        k = self.params.k
        if k is not None and self.params.k_every > 1 and step % self.params.k_every:
            k = 1
        return crosstalk_cross_entropy(views.restricted(), views.induced(k))
