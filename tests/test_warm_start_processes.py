"""Warm starts with real `harness` processes and signals: units before the cells that wait
for them (two workers), kill -9 of a warm-up and of a cell that forks from one (the rerun
resumes both, with the numbers of an uninterrupted run, and trains no warm-up twice),
concurrent runs of one spec (each unit computed once). The PostgreSQL store with
`harness worker` processes and the Ray executor: tests/test_cluster_warm_start.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import DATA, needs_ptb
from proc import HARNESS, journal, spawn, wait_for

from harness.runner import run_spec
from harness.spec import validate_spec

# Real processes on PTB (about 90 s): .ci/run's `-m heavy` step, not the default suite.
pytestmark = [needs_ptb, pytest.mark.heavy]
PARAMS = {"emb_size": 16, "hidden_size": 16, "layers": 1, "dropout": 0.3, "bptt": 10,
          "batch_size": 4, "eval_batch_size": 4, "eval_tokens": 1500,
          "induced_eval_tokens": 1500, "max_epochs": 8, "checkpoint": True, "imm_window": 5,
          "imm_k": 2}
FORK = {"from": "baseline", "until": {"epochs": 3}, "lr": 0.5}
SPEC: dict[str, Any] = {
    "name": "fork",
    "task": {"name": "ptb_lstm", "params": PARAMS},
    "methods": [
        {"name": "baseline", "warm_start": {"from": "baseline", "until": "converged"}},
        {"name": "imm_sampled", "label": "imm", "lambda": 0.2,
         "params": {"k": 2, "k_every": 2}, "warm_start": FORK},
        {"name": "reverse_kd", "lambda": 0.2, "warm_start": FORK},
    ],
    "sizes": [4000],
    "seeds": [0, 1],
    "threads": 1,
    "data_dir": str(DATA),
    "tracking": {"enabled": False},
}
CELLS, UNITS = 6, 4  # 3 methods x 2 seeds; per seed the 3-epoch and the converged warm-up


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "fork.yaml"
    path.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, Any]:
    """The metrics of an uninterrupted run, in this process: {cell id: metrics}."""
    import torch

    folder = tmp_path_factory.mktemp("reference")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        summary = run_spec(validate_spec({**SPEC, "output_dir": str(folder)}))
    finally:
        torch.set_num_threads(threads)
    assert summary.exit_code == 0 and len(summary.records) == CELLS
    assert len(summary.units) == UNITS
    return {i: r["metrics"] for i, r in {**summary.records, **summary.units}.items()}


def results(tmp_path: Path) -> Path:
    return tmp_path / "results" / "fork"


def metrics_of(root: Path) -> dict[str, Any]:
    out = {}
    for path in (root / "cells").glob("*.json"):
        record = json.loads(path.read_text())
        assert record["status"] == "ok", record["reason"]
        out[record["cell_id"]] = record["metrics"]
    return out


def harness(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*HARNESS, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def started(root: Path) -> list[dict[str, Any]]:
    return [e for e in journal(root) if e["event"] == "started"]


def inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def kill_group(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)  # the run and its workers (spawn: own session)
    proc.wait()


def first_checkpoint(root: Path, cell_id: str) -> bool:
    return any((root / "checkpoints" / cell_id).glob("**/run0.pt"))


def order_checked(root: Path) -> None:
    """Each cell started after every unit it waits for was recorded; each started once."""
    from harness.cells.data import CellData
    from harness.cells.grid import expand
    from harness.cells.units import units_for

    spec = validate_spec(SPEC)
    data = CellData(DATA)
    cells = expand(spec, None, data)
    after = {c.cell_id: c.after for c in cells + units_for(spec, cells, data)}
    lines = journal(root)
    recorded_at = {e["cell_id"]: i for i, e in enumerate(lines) if e["event"] == "recorded"}
    for i, event in enumerate(lines):
        if event["event"] == "started":
            for unit in after[event["cell_id"]]:
                assert recorded_at[unit] < i, f"{event['cell_id']} started before {unit}"


# ---- order, with two workers ------------------------------------------------------------------
def test_two_workers_start_cells_only_after_their_warm_ups(tmp_path, spec_file,
                                                           reference) -> None:
    run = harness("run", str(spec_file), "--workers", "2", "--no-report", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "6 ok, 0 failed, 0 skipped (0 resumed); 4 warm-up/trial unit(s)" in run.stdout
    assert "held by other runs" not in run.stdout + run.stderr  # it waited only for units
    root = results(tmp_path)
    order_checked(root)
    ids = [e["cell_id"] for e in started(root)]
    assert len(ids) == len(set(ids)) == CELLS + UNITS  # each unit and cell once
    assert metrics_of(root) == reference
    assert len(list((root / "warmups").iterdir())) == UNITS
    assert not any((root / "checkpoints").iterdir())  # per-epoch checkpoints cleaned up


# ---- kill -9 ------------------------------------------------------------------------------
def test_kill_9_of_a_warm_up_resumes_it_with_the_numbers_of_an_uninterrupted_run(
        tmp_path, spec_file, reference) -> None:
    root = results(tmp_path)
    proc = spawn(["run", str(spec_file), "--no-report"], tmp_path, log=tmp_path / "a.log")
    try:
        wait_for(lambda: started(root), proc=proc, what="the first warm-up")
        unit = started(root)[0]
        assert unit.get("unit") == "warm-up"
        wait_for(lambda: first_checkpoint(root, unit["cell_id"]), proc=proc,
                 what="the warm-up's first epoch")
    finally:
        kill_group(proc)
    assert not (root / "cells" / f"{unit['cell_id']}.json").exists()
    # Started and unrecorded at the kill: this warm-up, and whatever another worker ran
    # beside it (the default workers hand a helper a unit as it starts); each runs again.
    killed = {e["cell_id"] for e in started(root)
              if not (root / "cells" / f"{e['cell_id']}.json").exists()}
    assert unit["cell_id"] in killed
    rerun = harness("run", str(spec_file), "--no-report", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert metrics_of(root) == reference
    order_checked(root)
    runs = [e["cell_id"] for e in started(root)]
    assert runs.count(unit["cell_id"]) == 2  # killed once, then resumed
    assert all(runs.count(cell_id) == 2 for cell_id in killed)
    assert len(set(runs)) == CELLS + UNITS and len(runs) == CELLS + UNITS + len(killed)


def test_kill_9_of_a_cell_that_forks_resumes_it_and_trains_no_warm_up_twice(
        tmp_path, spec_file, reference) -> None:
    root = results(tmp_path)
    proc = spawn(["run", str(spec_file), "--no-report"], tmp_path, log=tmp_path / "a.log")
    try:
        wait_for(lambda: any(e.get("label") == "imm" for e in started(root)), proc=proc,
                 what="a forked cell", timeout=300)
        imm = next(e for e in started(root) if e.get("label") == "imm")
        wait_for(lambda: first_checkpoint(root, imm["cell_id"]), proc=proc,
                 what="the fork's first epoch")
    finally:
        kill_group(proc)
    # Warm-ups recorded before the kill (others, e.g. one running beside the fork in
    # another worker, were killed with it and are trained again).
    recorded = {e["cell_id"] for e in started(root)
                if e.get("unit") and (root / "cells" / f"{e['cell_id']}.json").exists()}
    states = {p: p.stat().st_mtime_ns for unit in recorded
              for p in (root / "warmups" / unit).glob("run*.pt")}
    assert states  # the warm-up it forked from
    rerun = harness("run", str(spec_file), "--no-report", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert metrics_of(root) == reference
    runs = [e["cell_id"] for e in started(root)]
    assert runs.count(imm["cell_id"]) == 2
    for unit in recorded:  # a warm-up recorded before the kill was not trained again
        assert runs.count(unit) == 1
    for path, mtime in states.items():
        assert path.stat().st_mtime_ns == mtime  # its state untouched


# ---- concurrent runs of one spec ---------------------------------------------------------
def test_concurrent_runs_compute_each_warm_up_and_cell_once(tmp_path, spec_file,
                                                            reference) -> None:
    root = results(tmp_path)
    procs = []
    for i, extra in enumerate(([], ["--workers", "2"], [])):
        # Each starts once the one before has set the folder up (grid.json rewritten, its
        # last write): runs that set it up at the same instant can remove each other's
        # temp files, a race of the set-up, not of the claims this test is about.
        before = inode(root / "grid.json")
        procs.append(spawn(["run", str(spec_file), "--no-report", *extra], tmp_path,
                           log=tmp_path / f"run{i}.log"))
        wait_for(lambda before=before: inode(root / "grid.json") != before,
                 proc=procs[-1], what=f"run {i}'s set-up", timeout=300)
    codes = [p.wait(900) for p in procs]
    assert codes == [0, 0, 0], {i: (rc, (tmp_path / f"run{i}.log").read_text()[-3000:])
                                for i, rc in enumerate(codes) if rc}
    ids = [e["cell_id"] for e in started(root)]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == CELLS + UNITS
    assert len({e["pid"] for e in started(root)}) >= 2  # the runs shared the work
    order_checked(root)
    assert metrics_of(root) == reference
