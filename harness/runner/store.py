"""The results folder of one spec: ``<output_dir>/<name>/``.

Layout: ``.harness`` (the marker: harness made this folder), ``spec.yaml`` (the spec as
last run), ``grid.json`` (the cell ids of that run's full grid and its data files: what
``harness report RESULTS`` selects), ``cells/<cell_id>.json`` (one record per cell, the
contract shared with harness.report; records of other configurations stay here too and
reports leave them out; a final record replaced by a new computation of its cell, after
its code changed, is moved to ``cells/replaced/<cell_id>.<finished>.json``),
``claims/<cell_id>.lock`` (cells being computed, see harness.runner.claims),
``journal.jsonl`` (one line per cell started, recorded, lost or discarded: the audit
trail), ``optuna.db`` (tuning studies), ``tracking.json`` (the
MLflow parent run) and ``checkpoints/<cell_id>/`` (training checkpoints of a cell that is
running or was interrupted). Every write is atomic, so a kill at any moment leaves either
the old or the new file, never a torn one.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

import yaml

from harness.atomic import (
    LinkRefused,
    append_no_follow,
    atomic_write_json,
    atomic_write_text,
    link_problem,
    stale_temp,
)
from harness.cells.folder import CELLS_DIR, GRID_FILE, read_grid
from harness.cells.record import cell_problem, record_problem, utc_now
from harness.jsonfile import read_json
from harness.runner.ownership import MARKER, Layout, claim_folder, is_marked

STALE_DIR = "stale"  # where earlier versions archived other configurations' records
REPLACED_DIR = "replaced"  # final records replaced by a recomputation (their code changed)
RECORD_NAME = "[0-9a-f]" * 16 + ".json"  # cells/<cell id>.json: what --fresh deletes there
CHECKPOINTS_DIR = "checkpoints"
CLAIMS_DIR = "claims"

RESULTS_LAYOUT: Layout = {
    "spec.yaml": None, GRID_FILE: None, "tracking.json": None, "journal.jsonl": None,
    "optuna.db": None, "optuna.db-*": None, "report.md": None, "report.csv": None,
    "report.html": None, "plot.png": None, CHECKPOINTS_DIR: None,
    "plots": {"*.png": None, "*.svg": None, "*.pdf": None},
    CELLS_DIR: {RECORD_NAME: None, STALE_DIR: {RECORD_NAME: None},
                REPLACED_DIR: {"[0-9a-f]*.json": None}},
    CLAIMS_DIR: {"*.lock": None, "*.takeover": None},
}
OUTPUT_LAYOUT: Layout = {"mlflow.db": None, "mlflow.db-*": None, "mlartifacts": None}


def is_final(record: dict[str, Any]) -> bool:
    """Whether a record ends its cell: ok, skipped or diverged. A cell that failed with an
    error (missing data, a bug since fixed) is run again on resume."""
    reason = record.get("reason") or ""
    return record.get("status") != "failed" or reason.startswith("diverged")


def looks_like_results(path: Path) -> bool:
    """A results folder of harness: marked, or (made before markers) spec.yaml + cells/."""
    return path.is_dir() and (is_marked(path) or (
        (path / "spec.yaml").is_file() and (path / CELLS_DIR).is_dir()))


class ResultsStore:
    """Reads and writes one spec's results folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cells_dir = root / CELLS_DIR
        self.claims_dir = root / CLAIMS_DIR
        self._warned: set[tuple[Path, str]] = set()
        self._journal_refused = False

    @classmethod
    def for_spec(cls, spec: Any) -> ResultsStore:
        """``<output_dir>/<name>/``, a relative output_dir taken from the spec's project
        folder (harness.spec.paths)."""
        from harness.spec.paths import results_folder

        return cls(results_folder(spec))

    # ---- paths ----------------------------------------------------------------------
    @property
    def optuna_url(self) -> str:
        return f"sqlite:///{(self.root / 'optuna.db').resolve()}"

    @property
    def tracking_path(self) -> Path:
        return self.root / "tracking.json"

    def record_path(self, cell_id: str) -> Path:
        return self.cells_dir / f"{cell_id}.json"

    def checkpoint_dir(self, cell_id: str) -> Path:
        """Where the runner lets a cell's task checkpoint."""
        return self.root / CHECKPOINTS_DIR / cell_id

    def remove_checkpoints(self, cell_id: str) -> bool:
        """Delete a cell's checkpoints (once its final record is written); True if any."""
        import shutil

        path = self.checkpoint_dir(cell_id)
        if not path.exists():
            return False
        shutil.rmtree(path, ignore_errors=True)
        return True

    # ---- lifecycle ------------------------------------------------------------------
    def claim_folders(self) -> None:
        """Refuse (FolderRefused, one line) unless harness may write the output folder
        and this results folder; mark them (see harness.runner.ownership)."""
        output = self.root.parent
        if output.is_dir() and not is_marked(output):
            ours = [p for p in output.iterdir() if looks_like_results(p)]
        else:
            ours = []
        claim_folder(output, "output_dir", OUTPUT_LAYOUT, adopt_if=ours)
        claim_folder(self.root, "results folder (name or output_dir)", RESULTS_LAYOUT)

    def prepare(self, spec: Any, grid: list[str], data: dict[str, Any],
                expect: dict[str, dict[str, Any]] | None = None) -> None:
        """Refuse a folder where something harness writes is a symbolic link (or a record
        path is a folder), create the layout, save the spec and its grid (with what each
        cell's record must say, ``expect``: harness.cells.record.expectation), drop temp
        files whose writer is gone and bring back records that earlier versions moved to
        cells/stale/."""
        problem = unsafe_entry(self.root)
        if problem is not None:
            raise LinkRefused(f"{problem}; nothing was run")
        self.cells_dir.mkdir(parents=True, exist_ok=True)
        self.claims_dir.mkdir(exist_ok=True)
        from harness.runner.claims import claim_timeout

        for leftover in list(self.cells_dir.glob(".*.tmp")) + list(self.root.glob(".*.tmp")):
            if stale_temp(leftover, claim_timeout()):  # never a live run's temp file
                leftover.unlink(missing_ok=True)
        stale = self.cells_dir / STALE_DIR
        for path in stale.glob("*.json"):
            if not (self.cells_dir / path.name).exists():
                os.replace(path, self.cells_dir / path.name)
        if stale.is_dir() and not any(stale.iterdir()):
            stale.rmdir()
        from harness.masking import masked_spec

        body = masked_spec(spec.model_dump(mode="json", by_alias=True))
        text = yaml.safe_dump(body, sort_keys=False)
        atomic_write_text(self.root / "spec.yaml", text)
        saved: dict[str, Any] = {"spec": spec.name, "cells": grid, "data": data}
        if expect is not None:
            saved["expect"] = expect
        atomic_write_json(self.root / GRID_FILE, saved)

    def writable(self) -> str | None:
        """None when files can be written here, else why not (one line)."""
        from harness.atomic import fresh_file, temp_prefix

        probe = self.root / f"{temp_prefix('write-probe')}probe.tmp"
        try:
            with fresh_file(probe):
                pass
            probe.unlink()
        except OSError as exc:
            return f"{self.root}: cannot write ({exc.strerror or exc})"
        return None

    # ---- records --------------------------------------------------------------------
    def read_record(self, cell_id: str, expect: dict[str, Any] | None = None
                    ) -> dict[str, Any] | None:
        """The cell's record, or None when it has none; an unreadable or incomplete one,
        or one that is not the record of the cell ``expect`` describes
        (harness.cells.record.expectation), counts as none (with a warning, once), so
        the cell is rerun."""
        path = self.record_path(cell_id)
        try:
            record = read_json(path)
        except (FileNotFoundError, IsADirectoryError):
            return None  # a folder there is refused by prepare, in one line
        except (OSError, ValueError) as exc:
            self._warn(path, f"unreadable record ({exc})")
            return None
        problem = record_problem(record, cell_id)
        if problem is not None:
            self._warn(path, f"incomplete record ({problem})")
            return None
        problem = cell_problem(record, expect) if expect is not None else None
        if problem is not None:
            self._warn(path, f"not this cell's record ({problem})")
            return None
        return record

    def _warn(self, path: Path, problem: str) -> None:
        if (path, problem) not in self._warned:
            self._warned.add((path, problem))
            print(f"warning: {path}: {problem}; the cell is rerun", file=sys.stderr)

    def final_record(self, cell_id: str, expect: dict[str, Any] | None = None
                     ) -> dict[str, Any] | None:
        """The cell's record if it ends the cell (see ``is_final``), else None."""
        record = self.read_record(cell_id, expect)
        return record if record is not None and is_final(record) else None

    def write_record(self, record: dict[str, Any]) -> Path:
        """Write the cell's record; a final record of another computation already there
        (its code changed, see harness.runner.resume) is first moved to
        ``cells/replaced/``, never overwritten."""
        path = self.record_path(record["cell_id"])
        self._keep_replaced(path, record)
        atomic_write_json(path, record)
        return path

    def _keep_replaced(self, path: Path, record: dict[str, Any]) -> None:
        try:
            old = read_json(path)
        except (OSError, ValueError):
            return
        if not isinstance(old, dict) or not is_final(old) or \
                old.get("finished") == record.get("finished"):
            return  # nothing there, a retried failure, or the same record updated
        stamp = "".join(c for c in str(old.get("finished") or "") if c.isdigit()) or "old"
        folder = self.cells_dir / REPLACED_DIR
        folder.mkdir(exist_ok=True)
        os.replace(path, folder / f"{record['cell_id']}.{stamp}.json")

    def grid(self) -> dict[str, Any] | None:
        """grid.json of the last run (None in folders made before it existed)."""
        return read_grid(self.root)

    # ---- journal --------------------------------------------------------------------
    def journal(self, event: str, cell_id: str | None = None, **fields: Any) -> None:
        """Append one line to journal.jsonl (a single O_APPEND write: lines of concurrent
        runs never interleave; never through a symbolic link)."""
        entry = {"time": utc_now(), "event": event, "cell_id": cell_id,
                 "host": socket.gethostname(), "pid": os.getpid(), **fields}
        line = (json.dumps(entry, sort_keys=False) + "\n").encode("utf-8")
        try:
            append_no_follow(self.root / "journal.jsonl", line)
        except LinkRefused as exc:
            if not self._journal_refused:  # once: the audit trail must never cost a result
                self._journal_refused = True
                print(f"warning: {exc}; the journal is not written", file=sys.stderr)
        except OSError:
            pass  # the audit trail must never cost a result

    # ---- tracking state -------------------------------------------------------------
    def read_tracking(self) -> dict[str, Any]:
        try:
            state = read_json(self.tracking_path)
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    def write_tracking(self, state: dict[str, Any]) -> None:
        atomic_write_json(self.tracking_path, state)


def unsafe_entry(root: Path) -> str | None:
    """One line naming the first entry harness writes in results folder ``root`` that is
    a symbolic link (or a record path that is a folder), else None. The folder itself may
    be a link (where a user keeps results is the user's choice); what harness writes
    inside it never is."""
    if not root.is_dir():
        return None
    for path in _written(root, RESULTS_LAYOUT):
        problem = link_problem(path)
        if problem is not None:
            return problem
    for path in (root / CELLS_DIR).glob("*.json"):
        if not path.is_symlink() and not path.is_file():
            return (f"{path}: is not a file, where harness keeps a cell's record; remove it "
                    "(harness did not make it)")
    return None


def _written(folder: Path, layout: Layout) -> list[Path]:
    """The entries of ``folder`` whose names ``layout`` says harness writes (inside
    subfolders too; everything inside a subfolder that is wholly harness's)."""
    import fnmatch

    out: list[Path] = []
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return out
    for entry in entries:
        pattern = next((k for k in (*layout, MARKER) if fnmatch.fnmatchcase(entry.name, k)),
                       None)
        if pattern is None:
            continue
        out.append(entry)
        if entry.is_symlink() or not entry.is_dir():
            continue
        inner = layout.get(pattern)
        if inner is not None:
            out += _written(entry, inner)
        else:
            out += sorted(entry.rglob("*"))
    return out


__all__ = ["MARKER", "RESULTS_LAYOUT", "ResultsStore", "is_final", "looks_like_results"]
