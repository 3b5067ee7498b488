"""The files of a results folder that readers need (the runner's ``ResultsStore`` writes
them): ``cells/<cell_id>.json`` records and ``grid.json``, the cell ids of the last run's
full grid. Kept here, below both the runner and the report, so that the report reads a
folder without importing the runner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.cells.record import record_problem
from harness.jsonfile import read_json

CELLS_DIR = "cells"
GRID_FILE = "grid.json"

RecordEntry = tuple[Path, "dict[str, Any] | None", "str | None"]


def read_grid(root: Path) -> dict[str, Any] | None:
    """grid.json of the last run (None in folders made before it existed)."""
    try:
        data = read_json(Path(root) / GRID_FILE)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("cells"), list) else None


def read_all_records(root: Path) -> list[RecordEntry]:
    """Every record file in the folder: (path, record or None, problem or None)."""
    out: list[RecordEntry] = []
    for path in sorted((Path(root) / CELLS_DIR).glob("*.json")):
        try:
            record = read_json(path)  # any content: a value or one line, never a traceback
        except OSError as exc:
            out.append((path, None, f"unreadable: {exc.strerror or exc}"))
            continue
        except ValueError as exc:
            out.append((path, None, f"unreadable: {exc}"))
            continue
        problem = record_problem(record, path.stem)
        out.append((path, None if problem else record, problem))
    return out
