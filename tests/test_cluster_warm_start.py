"""Warm starts on the PostgreSQL store with `harness worker` processes (also while the
database restarts) and on the Ray executor: units claimed before the cells that wait for
them, each recorded once, the numbers of a local run (the spec and helpers of
tests/test_warm_start_processes.py)."""

from __future__ import annotations

import os
import subprocess

import pytest
from clusterkit import events, postgres, ray_head, store  # noqa: F401 - fixtures
from conftest import DATA
from proc import HARNESS, spawn, wait_for
from test_store_restart import recorded, server  # noqa: F401 - fixture
from test_warm_start_processes import (  # noqa: F401 - fixtures
    CELLS,
    SPEC,
    UNITS,
    harness,
    metrics_of,
    order_checked,
    reference,
    results,
    spec_file,
)

from harness.runner.store import ResultsStore
from harness.spec import validate_spec

pytestmark = [pytest.mark.cluster, pytest.mark.heavy, pytest.mark.skipif(
    not (DATA / "ptb" / "ptb.train.txt").is_file(), reason="PTB data not available")]


def test_postgresql_workers_claim_cells_only_after_their_warm_ups(tmp_path, spec_file, store,
                                                                  reference) -> None:
    queued = harness("run", str(spec_file), "--store", store, "--enqueue", cwd=tmp_path)
    assert queued.returncode == 0, queued.stderr
    workers = [spawn(["worker", "--store", store, "--until-empty", "--poll", "0.2"],
                     tmp_path, log=tmp_path / f"w{i}.log") for i in range(2)]
    assert [w.wait(900) for w in workers] == [0, 0], [
        (tmp_path / f"w{i}.log").read_text()[-2000:] for i in range(2)]
    log = events(store, "fork")
    claimed = [e["cell_id"] for e in log if e["event"] == "claimed"]
    recorded = [e["cell_id"] for e in log if e["event"] == "recorded"]
    assert sorted(claimed) == sorted(set(claimed)) and len(claimed) == CELLS + UNITS
    assert sorted(recorded) == sorted(claimed)
    from harness.cells.data import CellData
    from harness.cells.grid import expand
    from harness.cells.units import units_for

    spec = validate_spec(SPEC)
    cells = expand(spec, None, CellData(DATA))
    after = {c.cell_id: c.after for c in cells + units_for(spec, cells, CellData(DATA))}
    position = {(e["event"], e["cell_id"]): i for i, e in enumerate(log)}
    for cell_id, units in after.items():
        for unit in units:
            assert position[("recorded", unit)] < position[("claimed", cell_id)]
    by_owner = {e["owner"] for e in log if e["event"] == "recorded"}
    assert len(by_owner) == 2  # both workers computed
    assert metrics_of(results(tmp_path)) == reference
    # The driver afterwards: everything is done; the report reads the cells, not the units.
    again = harness("run", str(spec_file), "--store", store, "--no-report", cwd=tmp_path)
    assert again.returncode == 0 and "(6 resumed)" in again.stdout, again.stdout
    report = harness("report", "fork", "--store", store, cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert "| imm |" in report.stdout and "warm-up" not in report.stdout + report.stderr


def test_the_ray_executor_runs_warm_ups_first_with_the_same_numbers(tmp_path, spec_file,
                                                                    ray_head,
                                                                    reference) -> None:
    run = subprocess.run([*HARNESS, "run", str(spec_file), "--no-report", "--executor", "ray",
                          "--address", ray_head.address], cwd=tmp_path, capture_output=True,
                         text=True, timeout=900, env={**os.environ, **ray_head.env})
    assert run.returncode == 0, run.stderr
    root = results(tmp_path)
    order_checked(root)
    assert metrics_of(root) == reference
    assert ResultsStore(root).grid()["cells"]  # a normal results folder


def test_database_restarts_under_workers_keep_units_first_and_lose_nothing(
        tmp_path, spec_file, server, reference) -> None:  # noqa: F811 - fixture
    """The claims that wait on units (after_ids) and the units' records go through the
    store's retried transactions: two restarts (after the first warm-up and mid-way)
    lose, repeat and reorder nothing."""
    url = server.create_db("warm")
    queued = harness("run", str(spec_file), "--store", url, "--enqueue", cwd=tmp_path)
    assert queued.returncode == 0, queued.stderr
    logs = [tmp_path / f"w{i}.log" for i in range(2)]
    workers = [spawn(["worker", "--store", url, "--until-empty", "--poll", "0.1"],
                     tmp_path, log=log) for log in logs]
    for threshold in (1, 5):
        wait_for(lambda t=threshold: recorded(url, "fork") >= t, timeout=600,
                 proc=workers[0], what=f"{threshold} recorded units or cells")
        server.restart(down_s=1.0)
    assert [w.wait(900) for w in workers] == [0, 0], [log.read_text()[-2000:] for log in logs]
    texts = [log.read_text() for log in logs]
    assert not any("Traceback" in text for text in texts), texts
    assert any("connection lost" in text for text in texts)
    log = events(url, "fork")
    ids = [e["cell_id"] for e in log if e["event"] == "recorded"]
    assert len(ids) == len(set(ids)) == CELLS + UNITS  # each once
    from harness.cells.data import CellData
    from harness.cells.grid import expand
    from harness.cells.units import units_for

    spec = validate_spec(SPEC)
    cells = expand(spec, None, CellData(DATA))
    first_recorded = {e["cell_id"]: i for i, e in reversed(list(enumerate(log)))
                      if e["event"] == "recorded"}
    for cell in cells + units_for(spec, cells, CellData(DATA)):
        claims = [i for i, e in enumerate(log) if e["event"] == "claimed"
                  and e["cell_id"] == cell.cell_id]
        assert claims and all(first_recorded[u] < min(claims) for u in cell.after)
    assert metrics_of(results(tmp_path)) == reference
