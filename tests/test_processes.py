"""Stopping and sharing, with real `harness run` processes and real signals (issue 11,
points 5 and 6): Ctrl-C stops a parallel run within seconds and leaves no process behind;
workers die with a killed main process; concurrent runs of one spec compute each cell
once; a silent run's cell is taken over and its late result discarded."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest
import yaml
from proc import events, spawn, wait_for, wait_gone

CELLS = 12


def write(tmp_path: Path, *, tracking: bool = False, epochs: int = 3000,
          name: str = "spec.yaml") -> Path:
    """12 IMM cells of about 1.5 s each on one thread."""
    spec = {
        "name": "procs",
        "task": {"name": "logistic", "params": {"epochs": epochs}},
        "methods": [{"name": "imm_sampled", "label": "imm", "lambda": 1.0}],
        "sizes": [2, 5, 10, 20, 30, 40], "seeds": [0, 1], "runs": 16,
        "tracking": {"enabled": tracking},
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec))
    return path


def records(results: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (results / "cells").glob("*.json")}


def recorded_once(results: Path) -> bool:
    ids = [e["cell_id"] for e in events(results, "recorded")]
    return len(ids) == len(set(ids))


def test_ctrl_c_stops_a_parallel_run_within_seconds_and_a_rerun_finishes(tmp_path) -> None:
    spec = write(tmp_path)
    results = tmp_path / "results" / "procs"
    run = spawn(["run", str(spec), "--workers", "2", "--no-report"], tmp_path,
                log=tmp_path / "a.log")
    # Wait until a cell is recorded and both workers are busy with the next ones.
    wait_for(lambda: events(results, "recorded")
             and len(events(results, "started")) >= len(events(results, "recorded")) + 2,
             proc=run, what="two busy workers")
    os.kill(run.pid, signal.SIGINT)
    clock = time.monotonic()
    rc = run.wait(30)
    stopped_in = time.monotonic() - clock
    assert rc == 130 and stopped_in < 8, (rc, stopped_in)
    assert wait_gone(run.pid) == []  # no worker (nor resource tracker) left
    log = (tmp_path / "a.log").read_text()
    assert "interrupted: finished cells are saved" in log and "Traceback" not in log
    kept = records(results)
    assert kept and len(kept) < CELLS
    assert {e["cell_id"] for e in events(results, "recorded")} == set(kept)
    assert not list((results / "claims").glob("*.lock"))  # claims released
    # A plain rerun computes the rest, once each; the kept records are untouched.
    before = {p.name: p.read_bytes() for p in (results / "cells").glob("*.json")}
    rerun = spawn(["run", str(spec), "--workers", "2", "--no-report"], tmp_path)
    assert rerun.wait(120) == 0
    after = {p.name: p.read_bytes() for p in (results / "cells").glob("*.json")}
    assert len(after) == CELLS and all(after[n] == b for n, b in before.items())
    assert recorded_once(results)


SLOW_CLEANUP = """
import sys, time
from pathlib import Path
from harness.runner.stopping import stop_on_signals

marker = Path(sys.argv[1])
with stop_on_signals(lambda: marker.write_text("children killed")):
    try:
        print("ready", flush=True)
        time.sleep(60)
    except KeyboardInterrupt:
        print("cleaning up", flush=True)
        time.sleep(60)  # a slow first cleanup: only a second signal ends it early
"""


def test_a_second_ctrl_c_exits_at_once(tmp_path) -> None:
    import subprocess
    import sys

    marker = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_CLEANUP, str(marker)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGINT)
    assert proc.stdout.readline().strip() == "cleaning up"
    proc.send_signal(signal.SIGINT)
    clock = time.monotonic()
    assert proc.wait(10) == 130
    assert time.monotonic() - clock < 2
    assert marker.read_text() == "children killed"
    assert "stopped at once" in proc.stderr.read()


def test_workers_die_with_a_killed_main_process_and_a_rerun_takes_over(tmp_path) -> None:
    spec = write(tmp_path)
    results = tmp_path / "results" / "procs"
    run = spawn(["run", str(spec), "--workers", "2", "--no-report"], tmp_path)
    wait_for(lambda: len(events(results, "started")) >= 2, proc=run, what="two busy workers")
    os.kill(run.pid, signal.SIGKILL)
    run.wait(10)
    assert wait_gone(run.pid, timeout=5) == []  # the workers noticed within seconds
    assert list((results / "claims").glob("*.lock"))  # the dead run's claims are left...
    rerun = spawn(["run", str(spec), "--workers", "2", "--no-report"], tmp_path)
    assert rerun.wait(120) == 0  # ...and taken over at once (their owner is gone)
    assert len(records(results)) == CELLS and recorded_once(results)


@pytest.mark.heavy
def test_two_concurrent_runs_compute_each_cell_once_and_log_one_mlflow_run_each(tmp_path
                                                                               ) -> None:
    spec = write(tmp_path, tracking=True)
    results = tmp_path / "results" / "procs"
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    first = spawn(["run", str(spec), "--no-report"], tmp_path, log=logs[0])
    wait_for(lambda: events(results, "started"), proc=first, what="the first cell")
    second = spawn(["run", str(spec), "--no-report"], tmp_path, log=logs[1])
    assert first.wait(180) == 0 and second.wait(180) == 0
    assert len(records(results)) == CELLS and recorded_once(results)
    assert len(events(results, "recorded")) == CELLS
    by_pid = {e["pid"] for e in events(results, "recorded")}
    assert by_pid == {first.pid, second.pid}  # both computed some
    computed = 0
    for log in logs:
        line = next(x for x in log.read_text().splitlines() if x.startswith("procs:"))
        ok, resumed = int(line.split()[1]), int(line.split("(")[1].split()[0])
        assert ok == CELLS
        computed += ok - resumed
    assert computed == CELLS  # the computed counts add up to the grid
    db = sqlite3.connect(tmp_path / "results" / "mlflow.db")
    rows = db.execute("select t.value, r.status from tags t join runs r on t.run_uuid = "
                      "r.run_uuid where t.key = 'cell_id'").fetchall()
    assert sorted(v for v, _ in rows) == sorted(records(results))  # one child run per cell
    assert {s for _, s in rows} == {"FINISHED"}
    parents = db.execute("select count(distinct value) from tags where key = "
                         "'mlflow.parentRunId'").fetchone()[0]
    assert parents == 1


@pytest.mark.heavy
@pytest.mark.parametrize("timeout", ["1.5"])
def test_a_silent_runs_cell_is_taken_over_and_its_late_result_discarded(tmp_path, timeout
                                                                        ) -> None:
    spec = write(tmp_path, epochs=6000)
    results = tmp_path / "results" / "procs"
    env = {"HARNESS_CLAIM_TIMEOUT": timeout}
    only = ["--only", "size=2", "--only", "size=5"]  # 4 cells
    silent = spawn(["run", str(spec), "--no-report", *only], tmp_path, env=env,
                   log=tmp_path / "a.log")
    wait_for(lambda: events(results, "started"), proc=silent, what="the first cell")
    os.kill(silent.pid, signal.SIGSTOP)
    try:  # the silent run holds the cells it claimed: one, or a group (one claim each)
        held = {p.stem for p in (results / "claims").glob("*.lock")
                if json.loads(p.read_text()).get("pid") == silent.pid}
        assert held >= {e["cell_id"] for e in events(results, "started")}
        other = spawn(["run", str(spec), "--no-report", *only], tmp_path, env=env)
        assert other.wait(180) == 0
    finally:
        os.kill(silent.pid, signal.SIGCONT)
    assert silent.wait(180) == 0
    assert len(records(results)) == 4 and recorded_once(results)
    discarded = events(results, "discarded")
    assert {e["cell_id"] for e in discarded} == held and len(discarded) == len(held)
    assert {e["pid"] for e in discarded} == {silent.pid}
    recorded = [e for e in events(results, "recorded") if e["cell_id"] in held]
    assert {e["pid"] for e in recorded} == {other.pid} and len(recorded) == len(held)
    assert "took the cell over" in (tmp_path / "a.log").read_text()


def test_a_stop_signal_swallowed_where_it_landed_still_stops_the_scheduler() -> None:
    """Python drops an exception raised inside a garbage collector's callback ("Exception
    ignored in ..."), and the first Ctrl-C's KeyboardInterrupt may land there: the
    scheduler asks at each turn (raise_if_told), so the stop is not lost."""
    import signal as signals

    from harness.runner.stopping import raise_if_told, stop_on_signals

    with stop_on_signals(lambda: None):
        raise_if_told()  # nothing told yet
        try:
            os.kill(os.getpid(), signals.SIGINT)
            time.sleep(1.0)  # the handler runs here and raises
        except KeyboardInterrupt:
            pass  # swallowed, as a callback would
        with pytest.raises(KeyboardInterrupt):
            raise_if_told()
    raise_if_told()  # the next run starts untold
