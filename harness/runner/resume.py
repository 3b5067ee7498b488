"""Which finished records a sweep resumes instead of computing their cells again.

A record is resumed when it is final (ok, skipped or diverged), is the record of its
cell (the cell id's task, method, label, size and seed, and the task's default
metric when ok: else it is unreadable, with a warning, and the cell is rerun), and was
computed by the same task and method code (harness.cells.code). A record whose task or
method code changed (sources, or the providing distribution's version) is recomputed,
with one note per change naming it; the old record is kept under ``cells/replaced/`` when
the new one is written. ``--reuse-changed-code`` resumes such records on purpose. A
change of the harness's own commit or version alone is recorded in each new record but
recomputes nothing; records made before harness recorded code (no ``code`` block) are
resumed, as code unknown.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from harness.cells.code import CodeIdentity, changes
from harness.cells.grid import Cell
from harness.cells.record import default_metric, expectation
from harness.runner.store import REPLACED_DIR, ResultsStore, is_final


class Resume:
    """The resume decision of one sweep, and the notes it owes the user."""

    def __init__(self, code: CodeIdentity, reuse_changed_code: bool = False) -> None:
        self.code = code
        self.reuse = reuse_changed_code
        self.changed: dict[str, set[str]] = {}  # change text -> cell ids recomputed
        self.reused: dict[str, set[str]] = {}  # change text -> cell ids kept on purpose
        self.unknown: set[str] = set()  # resumed records without a code block
        self._metrics: dict[str, str | None] = {}

    def expect(self, cell: Cell) -> dict[str, Any]:
        """What the record of ``cell`` must say (harness.cells.record.expectation)."""
        task = str(cell.config["task"]["name"])
        if task not in self._metrics:
            self._metrics[task] = default_metric(task)
        return expectation(cell.config, self._metrics[task])

    def final(self, store: ResultsStore, cell: Cell) -> dict[str, Any] | None:
        """The record that ends ``cell`` and may be resumed, else None (compute it)."""
        record = store.read_record(cell.cell_id, self.expect(cell))
        if record is None or not is_final(record):
            return None
        return record if self.usable(cell, record) else None

    def usable(self, cell: Cell, record: dict[str, Any]) -> bool:
        """Whether a final record of ``cell`` was made by the current code (or is kept
        on purpose); remembers why not, for ``notes``."""
        block = record.get("code")
        if not isinstance(block, dict):
            self.unknown.add(cell.cell_id)
            return True
        differs = changes(block, self.code.of_cell(cell.config))
        if not differs:
            return True
        text = "; ".join(differs)
        (self.reused if self.reuse else self.changed).setdefault(text, set()).add(
            cell.cell_id)
        return self.reuse

    def notes(self, store: ResultsStore) -> list[str]:
        """One line per code change seen (recomputed, or kept on purpose), and one for
        records of unknown code."""
        lines = [f"note: {what}: {len(ids)} cell(s) recorded with the earlier code are "
                 f"recomputed (the old records are kept in {store.cells_dir / REPLACED_DIR}"
                 "; --reuse-changed-code keeps the old results instead)"
                 for what, ids in sorted(self.changed.items())]
        lines += [f"note: {what}: {len(ids)} cell(s) recorded with the earlier code are "
                  "kept (--reuse-changed-code)" for what, ids in sorted(self.reused.items())]
        if self.unknown:
            lines.append(f"note: {len(self.unknown)} resumed record(s) were made before "
                         "harness recorded code identity (code unknown); `harness run "
                         "--fresh` recomputes them")
        return lines

    def changed_ids(self) -> set[str]:
        return set().union(*self.changed.values()) if self.changed else set()


def recorded(store: ResultsStore, resume: Resume, cells: Iterable[Cell]
             ) -> dict[str, dict[str, Any]]:
    """{cell id: record} of the ``cells`` that may be resumed."""
    out = {}
    for cell in cells:
        record = resume.final(store, cell)
        if record is not None:
            out[cell.cell_id] = record
    return out
