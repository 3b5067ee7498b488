"""The results directory of one spec: ``<output_dir>/<name>/``.

Layout: ``spec.yaml`` (the validated spec), ``cells/<cell_id>.json`` (one record per cell,
the contract shared with harness.report), ``optuna.db`` (tuning studies),
``tracking.json`` (the MLflow parent run) and ``checkpoints/<cell_id>/`` (training
checkpoints of a cell that is running or was interrupted; see harness.runner.sweep). Every
write is atomic (temp file in the same directory, fsync, os.replace), so a kill at any
moment leaves either the old or the new file, never a torn one.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

STALE_DIR = "stale"
CHECKPOINTS_DIR = "checkpoints"


def _file_mode() -> int:
    """0o666 less the umask: what open() would give (mkstemp makes 0o600 files)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _file_mode()


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n")


def _fsync_dir(directory: Path) -> None:
    """Persist the rename itself (POSIX); a no-op where directories cannot be opened."""
    if sys.platform.startswith("win"):
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ResultsStore:
    """Reads and writes one spec's results directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cells_dir = root / "cells"

    @classmethod
    def for_spec(cls, spec: Any) -> ResultsStore:
        """``<output_dir>/<name>/``, output_dir relative to the current directory."""
        return cls(Path(spec.output_dir) / spec.name)

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
        """Where the runner lets a cell's task checkpoint (``$HARNESS_CHECKPOINT_DIR``)."""
        return self.root / CHECKPOINTS_DIR / cell_id

    def remove_checkpoints(self, cell_id: str) -> bool:
        """Delete a cell's checkpoints (once its final record is written); True if any."""
        path = self.checkpoint_dir(cell_id)
        if not path.exists():
            return False
        shutil.rmtree(path, ignore_errors=True)
        return True

    # ---- lifecycle ------------------------------------------------------------------
    def clear(self) -> None:
        """Delete everything of this spec (``--fresh``)."""
        if self.root.exists():
            shutil.rmtree(self.root)

    def prepare(self, spec: Any) -> None:
        """Create the layout, save the spec and drop temp files left by a killed run."""
        self.cells_dir.mkdir(parents=True, exist_ok=True)
        for leftover in list(self.cells_dir.glob(".*.tmp")) + list(self.root.glob(".*.tmp")):
            leftover.unlink(missing_ok=True)
        text = yaml.safe_dump(spec.model_dump(mode="json", by_alias=True), sort_keys=False)
        atomic_write_text(self.root / "spec.yaml", text)

    def archive_stale(self, current: Iterable[str]) -> int:
        """Move records of cells no longer in the spec's grid (a changed setting gives new
        cell ids) to ``cells/stale/``, so reports only see the spec as it is now, and bring
        back archived records of current cells (the setting was changed back)."""
        keep = set(current)
        stale_dir = self.cells_dir / STALE_DIR
        for path in stale_dir.glob("*.json"):
            if path.stem in keep:
                os.replace(path, self.cells_dir / path.name)
        moved = 0
        for path in self.cells_dir.glob("*.json"):
            if path.stem not in keep:
                stale_dir.mkdir(exist_ok=True)
                os.replace(path, stale_dir / path.name)
                moved += 1
        return moved

    # ---- records --------------------------------------------------------------------
    def read_record(self, cell_id: str) -> dict[str, Any] | None:
        """The cell's record, or None when it has none (an unreadable one counts as none)."""
        path = self.record_path(cell_id)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            print(f"warning: {path}: unreadable record ({exc}); the cell is rerun",
                  file=sys.stderr)
            return None

    def write_record(self, record: dict[str, Any]) -> Path:
        path = self.record_path(record["cell_id"])
        atomic_write_json(path, record)
        return path

    # ---- tracking state -------------------------------------------------------------
    def read_tracking(self) -> dict[str, Any]:
        try:
            return json.loads(self.tracking_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def write_tracking(self, state: dict[str, Any]) -> None:
        atomic_write_json(self.tracking_path, state)
