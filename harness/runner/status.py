"""``harness status SPEC [--store URL]``: where a spec's grid stands (counts by state, who
holds which cell), from the shared store or, without one, from the results folder; and
the export of a store's records into a results folder's layout, so that ``harness report
--store`` reads exactly what ``harness report RESULTS`` reads."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from harness.errors import HarnessError


def _spec_and_name(source: str) -> tuple[Any, str]:
    """(the loaded spec or None, its name): a spec file, or a spec's name in the store."""
    path = Path(source)
    if path.is_file():
        from harness.spec import load_spec

        spec = load_spec(path)
        return spec, spec.name
    return None, source


def _store_url(spec: Any, given: str | None) -> str | None:
    return given or (getattr(spec, "store", None) if spec is not None else None)


def status_command(args: argparse.Namespace) -> int:
    spec, name = _spec_and_name(args.source)
    url = _store_url(spec, args.store)
    if url:
        return _store_status(url, name, spec)
    if spec is None:
        raise HarnessError(f"{args.source}: no such spec file (give --store URL to look a "
                           "spec up by name)")
    return _folder_status(spec)


def _grid_ids(spec: Any) -> list[str] | None:
    from harness.cells.grid import expand

    try:
        return [c.cell_id for c in expand(spec)]
    except Exception:  # noqa: BLE001 - data not found here: counts of all cells
        return None


def _store_status(url: str, name: str, spec: Any) -> int:
    from harness.runner.dbstore import CellStore, redact, short_owner

    store = CellStore(url)
    try:
        counts = store.counts(name)
        if not counts:
            known = ", ".join(store.specs()) or "none"
            raise HarnessError(f"store {redact(url)}: no cells of spec {name!r} (specs "
                               f"there: {known})")
        order = ("done", "failed", "running", "expired", "pending")
        parts = [f"{counts.get(k, 0)} {k}" for k in order if counts.get(k)]
        print(f"{name}: {', '.join(parts)} (store {redact(url)})")
        if counts.get("expired"):
            print("  expired: running cells whose owner stopped renewing its lease; the next "
                  "claim takes them over")
        for row in store.running(name):
            left = row["lease_left_s"]
            lease = f"lease {float(left):.0f}s left" if left is not None and left >= 0 \
                else "lease expired"
            print(f"  running {row['label']} size={row['size']} seed={row['seed']}  "
                  f"{short_owner(row['owner'])}  attempt {row['attempt']}  {lease}")
        refused = store.events(name, "refused")
        if refused:
            print(f"  {len(refused)} late result(s) refused (their owner's lease had run out)")
    finally:
        store.close()
    return 0


def _folder_status(spec: Any) -> int:
    from harness.runner.claims import FileClaims
    from harness.runner.store import ResultsStore

    store = ResultsStore.for_spec(spec)
    ids = _grid_ids(spec)
    if ids is None:
        saved = store.grid()
        ids = list(saved["cells"]) if saved else []
    records = {i: r for i in ids if (r := store.read_record(i)) is not None}
    counts = Counter(r["status"] for r in records.values())
    claims = FileClaims(store.claims_dir)
    held = [(i, h) for i in ids if i not in records and (h := claims.holder(i))]
    missing = len(ids) - len(records) - len(held)
    parts = [f"{counts[s]} {s}" for s in ("ok", "failed", "skipped") if counts[s]]
    parts += [f"{len(held)} running"] if held else []
    parts += [f"{missing} to do"] if missing else []
    from harness.spec.paths import where

    print(f"{spec.name}: {', '.join(parts) or 'nothing'} of {len(ids)} cells")
    print(f"  {where(spec)}")
    for cell_id, holder in held:
        print(f"  running {cell_id}  {holder}")
    return 0


# ---- report from the store ------------------------------------------------------------
def export_results(url: str, source: str, dest: Path, data_dir: str | None = None) -> Path:
    """Write the store's records of a spec into ``dest`` laid out as a results folder
    (spec.yaml, grid.json, cells/); the grid is the spec file's (as it is now) when
    ``source`` is a spec file, else the one saved by its last run."""
    from harness.atomic import atomic_write_json, atomic_write_text
    from harness.runner.dbstore import CellStore, redact
    from harness.runner.ownership import MARKER

    spec, name = _spec_and_name(source)
    store = CellStore(url)
    try:
        row = store.spec_row(name)
        if row is None:
            known = ", ".join(store.specs()) or "none"
            raise HarnessError(f"store {redact(url)}: no spec {name!r} (specs there: "
                               f"{known})")
        records = store.records(name)
    finally:
        store.close()
    grid = dict(row["grid"])
    body = row["body"]
    if spec is not None:
        from harness.cells.data import CellData
        from harness.cells.grid import expand

        data = CellData.for_spec(spec, data_dir)
        grid["cells"] = [c.cell_id for c in expand(spec, None, data)]
        body = spec.model_dump(mode="json", by_alias=True)
    (dest / "cells").mkdir(parents=True, exist_ok=True)
    (dest / MARKER).write_text(json.dumps({"made_by": "harness", "kind": "export"}) + "\n")
    atomic_write_text(dest / "spec.yaml", yaml.safe_dump(body, sort_keys=False))
    atomic_write_json(dest / "grid.json", grid)
    for record in records:
        atomic_write_json(dest / "cells" / f"{record['cell_id']}.json", record)
    return dest


def report_from_store(args: argparse.Namespace, command: Any) -> int:
    """``harness report|check|records --store URL``: the same command on the store's
    records, exported to a temporary results folder."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="harness-store-") as tmp:
        dest = Path(tmp) / "results"
        try:
            export_results(args.store, args.source, dest, getattr(args, "data_dir", None))
        except HarnessError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        args = argparse.Namespace(**{**vars(args), "source": str(dest)})
        return int(command(args))
