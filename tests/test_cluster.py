"""The cluster executor and the shared store (issue 14), the fast part: a real PostgreSQL
server and a real Ray head on 127.0.0.1, real `harness worker` processes and signals.
The slower fault tests are in test_cluster_faults.py (marker cluster_slow)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from clusterkit import (  # noqa: F401 - fixtures
    events,
    metrics,
    postgres,
    ray_head,
    recorded_once,
    records,
    states,
    store,
    write_spec,
)
from proc import spawn, wait_for

from harness.runner.placement import assign_gpus, visible_gpus
from harness.runner.pool import WorkerPool

pytestmark = pytest.mark.cluster
HARNESS = [sys.executable, "-m", "harness.cli"]


def harness(*args: str, cwd, env: dict | None = None, timeout: float = 300
            ) -> subprocess.CompletedProcess:
    return subprocess.run([*HARNESS, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


# ---- operational settings: validated, out of the cell id -----------------------------------
def test_resources_and_store_are_validated_and_stay_out_of_the_cell_id(tmp_path) -> None:
    from conftest import small_spec

    from harness.cells.grid import GridError
    from harness.runner import expand
    from harness.runner.sweep import run_spec
    from harness.spec import SpecError, validate_spec
    from harness.spec.models import resources_for

    plain = small_spec()
    placed = small_spec(task={"name": "logistic", "params": {"epochs": 40},
                              "resources": {"gpus": 1, "cpus": 4}},
                        store="postgresql+psycopg://u@db:5432/imm", threads=2)
    placed["methods"][1]["resources"] = {"gpus": 0.5}
    spec = validate_spec(placed)
    assert [c.cell_id for c in expand(spec)] == [c.cell_id for c in
                                                 expand(validate_spec(plain))]
    assert [resources_for(spec, m) for m in spec.methods] == [
        {"cpus": 4.0, "gpus": 1.0}, {"cpus": 4.0, "gpus": 0.5}, {"cpus": 4.0, "gpus": 1.0}]
    bad = {"gpus": 1.5}, {"cpus": 0}, {"gpu": 1}, {"gpus": "1"}
    for resources in bad:
        with pytest.raises(SpecError) as err:
            validate_spec(small_spec(task={"name": "logistic", "resources": resources}))
        assert len(err.value.lines) == 1 and "task.resources" in err.value.lines[0]
    with pytest.raises(SpecError, match="not a PostgreSQL URL"):
        validate_spec(small_spec(store="mysql://x"))
    for kwargs, message in (({"address": "h:1"}, "--executor ray"),
                            ({"enqueue_only": True}, "--store"),
                            ({"executor": "dask"}, "use one of")):
        with pytest.raises(GridError, match=message):
            run_spec(validate_spec(plain), **kwargs)


# ---- GPUs per local worker (a faked visible-device count: there are no GPUs here) ----------
def test_gpus_are_assigned_one_per_worker_when_several_are_visible(monkeypatch) -> None:
    assert assign_gpus(4, ["0", "1", "2", "3"]) == (["0", "1", "2", "3"], None)
    assert assign_gpus(2, ["0", "1", "2", "3"], per_worker=2)[0] == ["0,1", "2,3"]
    shared, warning = assign_gpus(3, ["4", "7"])
    assert shared == ["4", "7", "4"] and "share" in warning
    assert assign_gpus(2, ["0"]) == ([None, None], None)  # one GPU: left as it is
    assert assign_gpus(2, []) == ([None, None], None)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5,-1,6")
    assert visible_gpus() == ["2", "5"]  # CUDA stops at the first invalid entry


def device_of_worker(job, progress=None) -> dict:
    if job == "sleep":
        time.sleep(60)
    return {"job": job, "devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "pid": os.getpid()}


def collect(pool: WorkerPool, count: int, timeout: float = 120) -> list:
    seen: list = []
    deadline = time.monotonic() + timeout
    while len(seen) < count and time.monotonic() < deadline:
        seen += pool.wait(1.0)
    return seen


def test_each_local_worker_process_sees_its_own_gpu(monkeypatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")  # four "GPUs" on a CPU machine
    envs, _ = assign_gpus(3, visible_gpus())
    pool = WorkerPool(3, device_of_worker, threads=None,
                      envs=[{"CUDA_VISIBLE_DEVICES": e} for e in envs])
    try:
        pool.submit("sleep")
        for job in range(2):
            pool.submit(job)
        seen = [o.record for o in collect(pool, 2)]
        assert sorted(r["devices"] for r in seen) == ["1", "2"]  # 0 is the sleeper's
        assert len({r["pid"] for r in seen}) == 2
        [sleeper] = [w for w in pool._busy]
        os.kill(sleeper.process.pid, signal.SIGKILL)
        [lost] = collect(pool, 1)
        assert lost.record is None and lost.job == "sleep"
        for job in ("a", "b", "c"):  # two idle workers and a new one in the dead one's slot
            pool.submit(job)
        again = sorted(o.record["devices"] for o in collect(pool, 3))
        assert again == ["0", "1", "2"]  # the replacement has the dead worker's GPU
    finally:
        pool.terminate()


# ---- the claim race and the stale owner (harness worker processes) ------------------------
def test_claim_race_many_workers_many_tiny_cells_each_recorded_once(tmp_path, store) -> None:
    spec = write_spec(tmp_path, "race", sizes=[2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
                      seeds=[0, 1], epochs=5, runs=2)  # 40 cells of a few ms each
    queued = harness("run", str(spec), "--store", store, "--enqueue", cwd=tmp_path)
    assert queued.returncode == 0, queued.stderr
    workers = [spawn(["worker", "--store", store, "--until-empty", "--poll", "0.05"],
                     tmp_path, log=tmp_path / f"w{i}.log") for i in range(3)]
    assert [w.wait(240) for w in workers] == [0, 0, 0]
    assert recorded_once(store, "race", 40)
    assert not events(store, "race", "refused")
    assert set(states(store, "race").values()) == {"done"}
    by_owner = {e["owner"] for e in events(store, "race", "recorded")}
    assert len(by_owner) >= 2  # the workers shared the grid
    assert len(records(tmp_path / "results" / "race")) == 40  # files too (same host)
    # status and report from the store
    status = harness("status", "race", "--store", store, cwd=tmp_path)
    assert status.returncode == 0 and "race: 40 done" in status.stdout, status
    from_store = harness("report", "race", "--store", store, cwd=tmp_path)
    from_folder = harness("report", "results/race", cwd=tmp_path)
    assert from_store.returncode == 0, from_store.stderr
    assert from_store.stdout == from_folder.stdout and "| 11 |" in from_store.stdout


@pytest.mark.cluster_slow
def test_a_stopped_workers_late_result_is_refused(tmp_path, store) -> None:
    spec = write_spec(tmp_path, "stale", sizes=[40], seeds=[0], epochs=15000, runs=16)
    assert harness("run", str(spec), "--store", store, "--enqueue", cwd=tmp_path
                   ).returncode == 0
    env = {"HARNESS_CLAIM_TIMEOUT": "2"}
    first = spawn(["worker", "--store", store, "--max-cells", "1", "--poll", "0.05"],
                  tmp_path, env=env, log=tmp_path / "first.log")
    wait_for(lambda: events(store, "stale", "claimed"), proc=first, what="the claim")
    os.kill(first.pid, signal.SIGSTOP)
    try:
        time.sleep(3)  # past the lease
        second = spawn(["worker", "--store", store, "--until-empty", "--poll", "0.05"],
                       tmp_path, env=env, log=tmp_path / "second.log")
        assert second.wait(240) == 0
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert first.wait(240) == 0
    held = events(store, "stale", "claimed")[0]["cell_id"]
    claimed = [e for e in events(store, "stale", "claimed") if e["cell_id"] == held]
    assert [e["attempt"] for e in claimed] == [1, 2]
    [recorded] = [e for e in events(store, "stale", "recorded") if e["cell_id"] == held]
    [refused] = events(store, "stale", "refused")
    assert recorded["attempt"] == 2 and recorded["owner"] == claimed[1]["owner"]
    assert refused["cell_id"] == held and refused["attempt"] == 1
    assert refused["owner"] == claimed[0]["owner"]
    assert "refused stale" in (tmp_path / "first.log").read_text()
    assert recorded_once(store, "stale", 2)  # the grid's two cells, each once
    assert len(records(tmp_path / "results" / "stale")) == 2


# ---- Ray: the same cells, the same numbers, the same report --------------------------------
def test_a_ray_run_gives_the_same_records_and_report_as_a_local_run(tmp_path, ray_head
                                                                     ) -> None:
    spec = write_spec(tmp_path, "same", sizes=[2, 5, 10], seeds=[0, 1], epochs=200, runs=8)
    local = harness("run", str(spec), "--set", "output_dir=local", "--no-report",
                    cwd=tmp_path)
    assert local.returncode == 0, local.stderr
    ray = harness("run", str(spec), "--set", "output_dir=ray", "--no-report", "--executor",
                  "ray", "--address", ray_head.address, cwd=tmp_path, env=ray_head.env)
    assert ray.returncode == 0, ray.stderr
    a, b = metrics(tmp_path / "local" / "same"), metrics(tmp_path / "ray" / "same")
    assert len(a) == 12 and a == b  # the same cell ids, bit for bit the same numbers
    reports = [harness("report", f"{d}/same", cwd=tmp_path).stdout for d in ("local", "ray")]
    assert reports[0] == reports[1] and "| 10 |" in reports[0]


PLACEMENT = """
import json, sys, time
from harness.runner.ray_executor import RayExecutor, where

executor = RayExecutor(sys.argv[1], 2, run=where,
                       resources=lambda job: {"cpus": 0.5, "gpus": 1.0})
for job in (2.0, 2.0):  # two cells of 2 s each: at the same time
    executor.submit(job)
seen = []
deadline = time.monotonic() + 120
while len(seen) < 2 and time.monotonic() < deadline:
    seen += [o.record for o in executor.wait(5)]
executor.close()
print(json.dumps(seen))
"""


def test_ray_places_cells_by_their_gpus(ray_head) -> None:
    """Logical GPUs declared on the head (this machine has none): a cell that needs one
    sees exactly one, and two such cells at once see different ones. (In a process of its
    own: Ray reads its authentication settings once per process.)"""
    import json

    out = subprocess.run([sys.executable, "-c", PLACEMENT, ray_head.address],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, **ray_head.env})
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    devices = sorted(r["cuda_visible_devices"] for r in seen)
    assert devices == ["0", "1"], seen
