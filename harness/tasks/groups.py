"""What the tasks that train a group of cells as one program share (``Task.run_group``).

A group's members differ only in method, size, lambda or seed. The replicates of every
member are concatenated along the runs axis of one batched program: each replicate's
loss depends on its own weights only, so its gradient, and every number it gives, is the
one it has alone (the per-replicate arithmetic is unchanged). Members whose method trains
on the primary loss alone (``Method.trains_as_primary``) at the same size, seed and runs
train once and are each evaluated with their own method (interpolation trains exactly as
the baseline does).

Tuning trials may go further (``lambdas``): members of one method and params that differ
only in lambda, where the method allows it (``Method.batches_lambda``), train as one slot
with a lambda per run (``Method.lam_rows``), one set of operations for all of them. Their
numbers are then within float rounding of their runs alone, not bit-identical: torch's
vectorised loops compute the last few elements of a tensor by a scalar path whose exp and
log may differ from the vector path in the last bit, and in a batch of lambdas a run's
elements move between the two.

Each member's learning curve goes to its own sink (``GroupMember.curve``,
``report_curve``): the values its training's loss gives, the same as alone. A slot of
batched lambdas mixes its members' losses and reports none (tuning trials have no
curves).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from harness.methods.base import Method
from harness.tasks.base import CellRequest, GroupMember, MemberResult
from harness.tasks.kit import CurveSink, Progress

__all__ = ["GroupMember", "MemberResult", "Slot", "by_size", "curve_sinks", "report_curve",
           "run_alone", "training_slots"]


@dataclass
class Slot:
    """One training in a group program: the member indices it serves, the method it
    trains with and the request it trains for, and its rows [start, stop) of the batch."""

    members: list[int]
    method: Method
    request: CellRequest
    start: int = 0
    stop: int = 0
    extra: dict = field(default_factory=dict)  # the task's per-slot state
    copies: int = 1  # lambdas batched: the request's runs once per member, in order

    @property
    def rows(self) -> slice:
        return slice(self.start, self.stop)

    def member_rows(self, index: int) -> slice:
        """The rows of the slot (counted from its start) that are member ``index``'s."""
        if self.copies == 1:
            return slice(0, self.stop - self.start)
        block = self.members.index(index)
        runs = self.request.runs
        return slice(block * runs, (block + 1) * runs)


def training_slots(members: Sequence[GroupMember], indices: Sequence[int],
                   lambdas: bool = False) -> list[Slot]:
    """The trainings that ``members[indices]`` need, with their rows in the batch: one per
    member, except that members training on the primary loss alone share one per (size,
    seed, runs), and with ``lambdas`` members that differ only in a lambda their method
    batches share one with a lambda per run."""
    slots: list[Slot] = []
    shared: dict[tuple, Slot] = {}
    for index in indices:
        member = members[index]
        method, request = member.method, member.request
        key: tuple | None = None
        if method.trains_as_primary():
            key = ("primary", request.size, request.seed, request.runs)
        elif lambdas and method.batches_lambda():
            kind = type(method)
            key = ("lambda", kind.__module__, kind.__qualname__, repr(method.params),
                   request.size, request.seed, request.runs)
        if key is not None and key in shared:
            shared[key].members.append(index)
            continue
        slot = Slot([index], method, request)
        if key is not None:
            shared[key] = slot
            slot.extra["lambdas"] = key[0] == "lambda"
        slots.append(slot)
    row = 0
    for slot in slots:
        if slot.extra.pop("lambdas", False) and len(slot.members) > 1:
            slot.copies = len(slot.members)
            slot.method = copy.copy(slot.method)
            slot.method.lam_rows = torch.tensor(
                [members[i].method.lam for i in slot.members], dtype=torch.float64
            ).repeat_interleave(slot.request.runs)
        slot.start, slot.stop = row, row + slot.request.runs * slot.copies
        row = slot.stop
    return slots


def by_size(members: Sequence[GroupMember]) -> list[list[int]]:
    """Member indices grouped by dataset size, largest size first."""
    sizes: dict[int, list[int]] = {}
    for index, member in enumerate(members):
        sizes.setdefault(member.request.size, []).append(index)
    return [sizes[size] for size in sorted(sizes, reverse=True)]


def curve_sinks(members: Sequence[GroupMember], slot: Slot) -> list[CurveSink]:
    """Where the learning curve of ``slot``'s training goes: its members' sinks (none for
    a slot of batched lambdas, whose loss is its members' together)."""
    if slot.copies > 1:
        return []
    return [sink for index in slot.members if (sink := members[index].curve) is not None]


def report_curve(sinks: Sequence[CurveSink], step: int, **values: float | torch.Tensor
                 ) -> None:
    """One learning-curve point (after ``step`` epochs; means over the replicates, as a
    cell alone reports it) to each of ``sinks``; tensors are read once."""
    read = {name: float(value) for name, value in values.items()}
    for sink in sinks:
        sink(step, 0, dict(read))


def run_alone(task: Any, method: Method, request: CellRequest,
              progress: Progress | None = None) -> dict[str, Any]:
    """``Task.run`` of a task that trains groups: the cell as a group of one (the same
    program as in any group), its learning curve to the runner's callback."""
    member = GroupMember(method, request, getattr(progress, "curve", None))
    ((_, result),) = task.run_group([member], progress)
    if isinstance(result, Exception):
        raise result
    return result
