"""The shared store survives its database: a real PostgreSQL is restarted (``pg_ctl stop -m
fast``, then started again: every session is terminated, as in a failover) several times
under two ``harness worker`` processes and a driver. Each cell is recorded exactly once,
nobody prints a traceback, and the report equals an undisturbed run's byte for byte. A
store that stays down past ``$HARNESS_STORE_RETRY`` ends the worker with one line."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from clusterkit import events, need_postgres, records, states, write_spec
from proc import spawn, wait_for
from servers import Postgres

pytestmark = pytest.mark.cluster
HARNESS = [sys.executable, "-m", "harness.cli"]


@pytest.fixture
def server():
    """A server of this test's own: it is restarted, which other tests must not see."""
    need_postgres()
    pg = Postgres()
    yield pg
    pg.stop()


def harness(*args: str, cwd, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*HARNESS, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**os.environ, **(env or {})})


def recorded(url: str, spec: str) -> int:
    try:
        return len(events(url, spec, "recorded"))
    except Exception:  # noqa: BLE001 - the server is down at this moment
        return -1


@pytest.mark.cluster_slow
def test_restarts_under_two_workers_and_a_driver_lose_and_repeat_nothing(tmp_path, server
                                                                         ) -> None:
    url = server.create_db("restarts")
    ref_spec = write_spec(tmp_path / "ref", "restarts", sizes=[10, 20, 30, 40], seeds=[0, 1],
                          epochs=2500, runs=8)  # 16 cells
    spec = write_spec(tmp_path / "run", "restarts", sizes=[10, 20, 30, 40], seeds=[0, 1],
                      epochs=2500, runs=8)
    reference = harness("run", str(ref_spec), cwd=tmp_path / "ref")
    assert reference.returncode == 0, reference.stderr[-2000:]

    cwd = tmp_path / "run"
    assert harness("run", str(spec), "--store", url, "--enqueue", cwd=cwd).returncode == 0
    logs = [tmp_path / f"{name}.log" for name in ("worker1", "worker2", "driver")]
    procs = [spawn(["worker", "--store", url, "--until-empty", "--poll", "0.1"], cwd,
                   log=logs[0]),
             spawn(["worker", "--store", url, "--until-empty", "--poll", "0.1"], cwd,
                   log=logs[1]),
             spawn(["run", str(spec), "--store", url], cwd, log=logs[2])]
    restarts = 0
    for threshold in (2, 6, 10):  # restarts spread over the sweep
        wait_for(lambda t=threshold: recorded(url, "restarts") >= t, timeout=300,
                 proc=procs[2], what=f"{threshold} recorded cells")
        server.restart(down_s=1.0)
        restarts += 1
    for proc, log in zip(procs, logs, strict=True):
        assert proc.wait(400) == 0, log.read_text()[-3000:]
    texts = [log.read_text() for log in logs]
    assert not any("Traceback" in text for text in texts), texts
    assert any("connection lost" in text for text in texts)  # the restarts were seen
    assert restarts == 3

    ids = [e["cell_id"] for e in events(url, "restarts", "recorded")]
    assert len(ids) == 16 and len(set(ids)) == 16  # each cell recorded exactly once
    assert set(states(url, "restarts").values()) == {"done"}
    results, ref = cwd / "results" / "restarts", tmp_path / "ref" / "results" / "restarts"
    assert len(records(results)) == 16
    for name in ("report.md", "report.csv"):
        assert (results / name).read_bytes() == (ref / name).read_bytes(), name


def test_a_store_down_longer_than_the_retry_time_ends_a_worker_in_one_line(tmp_path, server
                                                                           ) -> None:
    url = server.create_db("down")
    spec = write_spec(tmp_path, "down", sizes=[10, 20], seeds=[0, 1], epochs=200, runs=2)
    assert harness("run", str(spec), "--store", url, "--enqueue", cwd=tmp_path
                   ).returncode == 0
    worker = spawn(["worker", "--store", url, "--poll", "0.1"], tmp_path,
                   env={"HARNESS_STORE_RETRY": "3"}, log=tmp_path / "worker.log")
    wait_for(lambda: len(events(url, "down", "recorded")) == 4, proc=worker,
             what="the four cells")
    server.stop_server()
    clock = time.monotonic()
    try:
        rc = worker.wait(60)
    finally:
        server.start_server()
    text = (tmp_path / "worker.log").read_text()
    assert rc == 1, text
    assert time.monotonic() - clock < 30
    assert "Traceback" not in text
    assert "connection lost and not back within 3s" in text
