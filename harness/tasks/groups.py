"""What the tasks that train a group of cells as one program share (``Task.run_group``).

A group's members differ only in method, size, lambda or seed. The replicates of every
member are concatenated along the runs axis of one batched program: each replicate's
loss depends on its own weights only, so its gradient, and every number it gives, is the
one it has alone (the per-replicate arithmetic is unchanged). Members whose method trains
on the primary loss alone (``Method.trains_as_primary``) at the same size, seed and runs
train once and are each evaluated with their own method (interpolation trains exactly as
the baseline does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from harness.methods.base import Method
from harness.tasks.base import CellRequest, GroupMember


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

    @property
    def rows(self) -> slice:
        return slice(self.start, self.stop)


def training_slots(members: Sequence[GroupMember], indices: Sequence[int]) -> list[Slot]:
    """The trainings that ``members[indices]`` need, with their rows in the batch: one per
    member, except that members training on the primary loss alone share one per (size,
    seed, runs)."""
    slots: list[Slot] = []
    shared: dict[tuple, Slot] = {}
    for index in indices:
        member = members[index]
        request = member.request
        if member.method.trains_as_primary():
            key = (request.size, request.seed, request.runs)
            if key in shared:
                shared[key].members.append(index)
                continue
            slot = shared[key] = Slot([index], member.method, request)
        else:
            slot = Slot([index], member.method, request)
        slots.append(slot)
    row = 0
    for slot in slots:
        slot.start, slot.stop = row, row + slot.request.runs
        row = slot.stop
    return slots


def by_size(members: Sequence[GroupMember]) -> list[list[int]]:
    """Member indices grouped by dataset size, largest size first."""
    sizes: dict[int, list[int]] = {}
    for index, member in enumerate(members):
        sizes.setdefault(member.request.size, []).append(index)
    return [sizes[size] for size in sorted(sizes, reverse=True)]
