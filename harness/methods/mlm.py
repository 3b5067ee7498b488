"""MLM: the primary loss of a task's auxiliary masked-LM branch, no regulariser.

For the GLUE BERT task (paper Table 2, "+MLM"): the task loss plus the re-introduced MLM
loss. The task decides what its primary loss is; this method only says "the MLM branch
on, no term", so that ``baseline`` keeps one meaning everywhere (the primary loss alone:
for GLUE the task loss without MLM). Tasks without an auxiliary MLM branch (a task
attribute ``mlm_branch = True`` declares one) skip it with a reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.methods.base import Method

if TYPE_CHECKING:
    from harness.tasks.base import Task


class Mlm(Method):
    """Primary loss with the task's MLM branch; the restricted model is unused."""

    name = "mlm"

    def skip(self, task: Task) -> str | None:
        if getattr(task, "mlm_branch", False):
            return None
        return (f"mlm adds a masked-LM loss beside a task's own loss; task '{task.name}' has "
                "no such branch (there it would equal the baseline)")
