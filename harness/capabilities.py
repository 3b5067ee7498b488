"""The words in which methods and tasks meet: what a method needs, what a task supplies.

A method declares ``requires`` (names below); a task declares ``supplies`` and, for a
capability it withholds on purpose, ``declines`` with the reason. The runner skips a cell
whose method needs something its task does not supply, with the reason taken from these
declarations, for built-in and outside methods alike: no part of the harness tests a
method's name or class.
"""

from __future__ import annotations

from typing import Any

CAPABILITIES: dict[str, str] = {
    "restricted": "the restricted model's prediction P(y | short context) (Views.restricted)",
    "induced": "the induced model, Q averaged over extended contexts that share the short "
               "context (Views.induced)",
    "stale_correction": "a stale snapshot's correction Q_stale(y|x) / Qbar_stale(y|short) "
                        "(Views.stale_correction)",
    "stale_prediction": "a stale snapshot's prediction log Q_stale(y|x) on the batch "
                        "(Views.stale_log_q)",
    "noising": "a form of noising of the batch (Views.noising, Views.noise)",
    "auxiliary_loss": "an auxiliary loss branch a method can switch on (e.g. the masked-LM "
                      "loss beside a GLUE task's loss)",
    "mixed_prediction": "evaluation of the prediction a method makes from Q and the "
                        "restricted model (Method.predict)",
    "cell_groups": "cells that differ only in method, size, lambda or seed run as one "
                   "program (Task.run_group), each with the numbers it has alone",
}

# Closed forms a method's term may declare (Method.term_form); a task that knows one may
# compute it by an exact faster path, and must equal autograd on ``loss_parts``.
TERM_FORMS: dict[str, str] = {
    "restricted_cross_entropy": "lambda CE(P_restricted, Q) on the primary's forward "
                                "(reverse-KD, Eq. 14)",
    "stale_corrected_cross_entropy": "lambda CE((Q_stale / Qbar_stale) P_restricted, Q), "
                                     "refreshed every params.refresh_every steps (Eq. 13)",
    "induced_cross_entropy": "lambda CE(P_restricted, Qbar_k) with params k, k_every and "
                             "single_sample (Eq. 12)",
}


def missing(method: Any, task: Any) -> str | None:
    """Why ``task`` cannot serve ``method`` (the first capability it lacks), or None."""
    supplied = set(getattr(task, "supplies", ()))
    declined = dict(getattr(task, "declines", {}))
    for capability in sorted(set(method.requires) - supplied):
        if capability in declined:
            return declined[capability]
        what = CAPABILITIES.get(capability, capability)
        return (f"{method.name} needs '{capability}' ({what}), which task '{task.name}' does "
                "not supply")
    return None


def groups_cells(task: Any) -> bool:
    """Whether ``task`` (a Task class or instance) trains a group of cells as one program."""
    return "cell_groups" in set(getattr(task, "supplies", ()))
