"""``harness run --fresh``: forget earlier results, no more than was asked, never what a
live run holds, never a file harness did not write.

- With ``--only``, only the selected cells are cleared: their records and checkpoints
  (and the tuning study of a tuned (method, size) whose cells are all selected); every
  other cell, the journal, the MLflow parent run and the spec's files stay.
- Without it, the whole results folder is cleared of what harness writes there
  (harness.runner.ownership); anything else is kept and named.
- Before anything is deleted, the claim of every cell to clear (and of its tuning study)
  is taken, as a run would take it: a cell held by a live run (another ``harness run``
  computing it) makes ``--fresh`` refuse, with one line naming the holder, and nothing
  is cleared. Without ``--only``, a live claim on anything in the folder refuses too.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from harness.cells.grid import Cell
from harness.errors import HarnessError
from harness.runner.claims import Claim, FileClaims
from harness.runner.ownership import clear_folder
from harness.runner.store import CLAIMS_DIR, RESULTS_LAYOUT, ResultsStore


class FreshRefused(HarnessError):
    """--fresh would clear a cell a live run holds; the message is one line."""


def clear_fresh(store: ResultsStore, selected: list[Cell], grid: list[Cell],
                scoped: bool) -> list[str]:
    """Clear for ``--fresh`` (see the module docstring); return the paths kept (relative
    to the results folder) because harness did not write them."""
    if not store.root.exists():
        return []
    studies = _studies(selected, grid)
    keys = {c.cell_id: c.describe() for c in selected}
    keys.update({f"tune-{name}": f"the tuning study {name}" for name in studies})
    claims = FileClaims(store.claims_dir)
    held: list[Claim] = []
    try:
        for key, what in keys.items():
            claim = claims.acquire(key)
            if claim is None:
                raise _refused(store, what, claims.holder(key))
            held.append(claim)
        if not scoped:
            for key in _lock_keys(store.claims_dir):
                holder = None if key in keys else claims.holder(key)
                if holder is not None:
                    raise _refused(store, f"claim {key}", holder)
            kept = clear_folder(store.root, RESULTS_LAYOUT, keep={CLAIMS_DIR})
            _drop_stale_locks(store.claims_dir, claims, set(keys))
            return kept
        for cell in selected:
            store.record_path(cell.cell_id).unlink(missing_ok=True)
            path = store.checkpoint_dir(cell.cell_id)
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
        _delete_studies(store, studies)
        return []
    finally:
        for claim in held:
            claims.release(claim)
        claims.close()


def _refused(store: ResultsStore, what: str, holder: str | None) -> FreshRefused:
    return FreshRefused(f"--fresh: {what} in {store.root} is held by a live run "
                        f"({holder or 'another process'}); nothing was cleared: wait for "
                        "that run to finish (or stop it), then rerun")


def _studies(selected: Iterable[Cell], grid: Iterable[Cell]) -> list[str]:
    """The tuning studies of tuned (label, size) pairs whose grid cells are all selected
    (a study other seeds share is kept)."""
    from harness.tuning import study_name

    chosen = {c.cell_id for c in selected}
    pairs: dict[tuple[str, int], bool] = {}
    for cell in grid:
        if cell.tuned:
            key = (cell.label, cell.size)
            pairs[key] = pairs.get(key, True) and cell.cell_id in chosen
    return [study_name(label, size) for (label, size), every in pairs.items() if every]


def _lock_keys(folder: Path) -> list[str]:
    try:
        return sorted(p.name.removesuffix(".lock") for p in folder.glob("*.lock"))
    except OSError:
        return []


def _drop_stale_locks(folder: Path, claims: FileClaims, ours: set[str]) -> None:
    """Remove lock files no live run holds (ours are released by the caller)."""
    for key in _lock_keys(folder):
        if key not in ours and claims.holder(key) is None:
            (folder / f"{key}.lock").unlink(missing_ok=True)


def _delete_studies(store: ResultsStore, studies: list[str]) -> None:
    if not studies or not (store.root / "optuna.db").is_file():
        return
    import optuna

    for name in studies:
        try:
            optuna.delete_study(study_name=name, storage=store.optuna_url)
        except KeyError:
            pass  # never tuned
