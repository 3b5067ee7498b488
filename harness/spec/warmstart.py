"""How a spec says that a method starts from another method's training state.

``warm_start: {from: baseline, until: {valid_ppl_below: 150}, lr: 0.5}`` on a method
entry: its cells start from the state of the entry labelled ``baseline`` trained from
scratch at the same size and seed until the rule holds (a warm-up, trained once and
shared by every entry that names the same ``from`` and ``until``), with the lr reset to
0.5 and the method's term switched on. Without ``lr`` the warm-up's schedule carries on
(for the ``from`` entry itself: the same numbers as training from scratch).

The rules a task understands are its params' ``warm_up_rules`` (e.g. the LSTM LM's
``valid_ppl_below``, ``epochs`` and ``converged``); the runner's side is
``harness.runner.dependencies``.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import ConfigDict, Field, PositiveFloat, field_validator, model_validator

from harness.spec.strict import StrictModel

CONVERGED = "converged"


class WarmStart(StrictModel):
    """Start this method's cells from a warm-up (see the module docstring)."""

    model_config = ConfigDict(populate_by_name=True)
    from_: str = Field(
        alias="from", min_length=1,
        description="label of the method entry whose training is the warm-up (may be this "
        "entry itself); its configuration is trained from scratch, ignoring its own "
        "warm_start",
    )
    until: Any = Field(
        CONVERGED,
        description="where the warm-up stops: one rule the task knows, e.g. "
        "{valid_ppl_below: 150} (the first epoch ending below it), {epochs: 5}, or "
        "converged (its own stopping rule; the default)",
    )
    lr: PositiveFloat | None = Field(
        None,
        description="learning rate at the fork; the method's term starts there (the "
        "paper's fine-tuning switch). null: the warm-up's schedule carries on",
    )

    @field_validator("until", mode="before")
    @classmethod
    def _one_rule(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and len(value) == 1:
            [(name, number)] = value.items()
            if isinstance(number, bool) or not isinstance(number, int | float) or \
                    not math.isfinite(number) or number <= 0:
                raise ValueError(f"{name}: expected a number above 0, got {number!r}")
            return {str(name): float(number)}
        raise ValueError("give one rule, e.g. {valid_ppl_below: 150}, {epochs: 5} or "
                         "converged")

    @model_validator(mode="after")
    def _lr_needs_a_schedule(self) -> WarmStart:
        if self.until == CONVERGED and self.lr is not None:
            raise ValueError("lr: a converged warm-up has no schedule left to continue; give "
                             "lr with a rule that stops earlier, e.g. {valid_ppl_below: 150}")
        return self

    @property
    def rule(self) -> tuple[str, float | None]:
        """(rule name, value): ('valid_ppl_below', 150.0), ('converged', None)."""
        if isinstance(self.until, dict):
            [(name, value)] = self.until.items()
            return name, float(value)
        return CONVERGED, None

    def until_dump(self) -> str | dict[str, float]:
        """``until`` as the spec writes it (what warm-up ids hash)."""
        name, value = self.rule
        return name if value is None else {name: value}


def rule_problem(warm: WarmStart, rules: dict[str, str], task: str) -> str | None:
    """Why ``warm``'s rule is not one the task knows (one line), or None."""
    from harness.registry import did_you_mean

    name, value = warm.rule
    if not rules:
        return f"task '{task}' keeps no training state to start from (no warm starts)"
    if name not in rules:
        known = ", ".join(rules)
        return f"until: unknown rule {name!r} for task '{task}'.{did_you_mean(name, list(rules))}"\
               f" Known: {known}"
    if name == "epochs" and value is not None and value != int(value):
        return f"until.epochs: expected a whole number of epochs, got {value}"
    return None
