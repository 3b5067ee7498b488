"""Sampled IMM (paper Eq. 12, Alg. 1): match the restricted model to the induced model."""

from torch import Tensor

from harness.methods.base import Method
from harness.methods.induced import cross_entropy, crosstalk_cross_entropy
from harness.tasks.base import Views


class ImmSampled(Method):
    """term = CE(P_restricted(.|short), Qbar(.|short)), Qbar = the full model averaged over
    extended contexts sharing the short context: all of them with the task's weights
    (k = null), or k sampled ones; a single sample on steps between every k_every-th.

    The single sample is by default the item's own extended context: over an epoch every
    training position is visited once, and its context is a uniform draw from the
    multiset of contexts sharing its short context, so the expected term equals that of
    a fresh draw (the paper's argument relating single-sample IMM to noising: a single
    sample just presents the data in another order). It is read from
    ``views.log_q_imm()`` (the IMM branch's view of the item's own context, e.g. without
    dropout) and costs no sampling.
    """

    name = "imm_sampled"
    requires = frozenset({"restricted", "induced"})
    regularises = True
    lambda_batch = True
    term_form = "induced_cross_entropy"

    def deterministic_term(self) -> bool:
        return self.params.k is None  # k sampled contexts are drawn

    def term(self, views: Views, step: int) -> Tensor:
        k = self.params.k
        if k is not None and self.params.k_every > 1 and step % self.params.k_every:
            if self.params.single_sample == "own":
                return cross_entropy(views.restricted(), views.log_q_imm())
            k = 1
        return crosstalk_cross_entropy(views.restricted(), views.induced(k))
