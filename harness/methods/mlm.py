"""MLM: the primary loss of a task's auxiliary masked-LM branch, no regulariser.

For the GLUE BERT task (paper Table 2, "+MLM"): the task loss plus the re-introduced MLM
loss. The task decides what its primary loss is; this method only says "the auxiliary
branch on, no term" (it requires the capability ``auxiliary_loss``), so that ``baseline``
keeps one meaning everywhere (the primary loss alone: for GLUE the task loss without
MLM). Tasks without an auxiliary branch skip it, with the reason from the capabilities.
"""

from __future__ import annotations

from harness.methods.base import Method


class Mlm(Method):
    """Primary loss with the task's MLM branch; the restricted model is unused."""

    name = "mlm"
    requires = frozenset({"auxiliary_loss"})
