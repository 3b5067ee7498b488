"""Reverse knowledge distillation: the full model matched to the restricted teacher."""

from torch import Tensor

from harness.methods.base import Method
from harness.methods.induced import cross_entropy
from harness.tasks.base import Views


class ReverseKd(Method):
    """term = CE(P_restricted(.|short), Q(.|full context)): the paper's Eq. 14."""

    name = "reverse_kd"
    requires = frozenset({"restricted"})
    regularises = True
    lambda_batch = True
    term_form = "restricted_cross_entropy"

    def term(self, views: Views, step: int) -> Tensor:
        return cross_entropy(views.restricted(), views.log_q())
