"""The cluster's faults (issue 14), the slower part (marker cluster_slow, run by .ci/run):
a 2-node Ray cluster whose worker process is killed mid-cell, a `harness worker` killed
mid-cell, a driver killed and rerun, two drivers on one store, an Optuna trial killed,
and MLflow through a real `mlflow server` on PostgreSQL. All servers on 127.0.0.1,
started here and stopped by their PIDs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from clusterkit import (  # noqa: F401 - fixtures
    events,
    need_ray,
    postgres,
    recorded_once,
    records,
    states,
    store,
    write_spec,
)
from proc import spawn, wait_for, wait_gone
from servers import MlflowServer, RayNode, session_members, wait_for_nodes

pytestmark = [pytest.mark.cluster, pytest.mark.cluster_slow]
HARNESS = [sys.executable, "-m", "harness.cli"]


def harness(*args: str, cwd, env: dict | None = None, timeout: float = 600
            ) -> subprocess.CompletedProcess:
    return subprocess.run([*HARNESS, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def journal_recorded(results: Path) -> list[str]:
    from proc import events as journal_events

    return [e["cell_id"] for e in journal_events(results, "recorded")]


def summary_line(text: str, name: str) -> tuple[int, int]:
    """(ok, resumed) of a run's summary line."""
    line = next(x for x in text.splitlines() if x.startswith(f"{name}:"))
    return int(line.split()[1]), int(line.split("(")[1].split()[0])


# ---- Ray: a worker process killed mid-cell -------------------------------------------------
@pytest.fixture(scope="module")
def two_nodes():
    need_ray()
    head = RayNode(cpus=1)
    worker = None
    try:
        worker = RayNode(cpus=1, head=head)
        wait_for_nodes(head, 2)
        yield head, worker
    finally:
        if worker is not None:
            worker.stop()
        head.stop()


def cell_processes(nodes) -> list[int]:
    """Ray worker processes of our nodes that run a harness cell now."""
    pids = []
    for node in nodes:
        for pid in session_members(node.proc.pid):
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if "harness_cell" in title:
                pids.append(pid)
    return pids


def test_a_ray_worker_killed_mid_cell_is_retried_and_recorded_once(tmp_path, two_nodes
                                                                   ) -> None:
    spec = write_spec(tmp_path, "raykill", sizes=[20, 40], seeds=[0], epochs=12000, runs=16)
    results = tmp_path / "results" / "raykill"
    run = spawn(["run", str(spec), "--executor", "ray", "--address", two_nodes[0].address,
                 "--no-report"], tmp_path, env=two_nodes[0].env, log=tmp_path / "run.log")
    wait_for(lambda: cell_processes(two_nodes), timeout=180, proc=run, what="a cell task")
    time.sleep(1.0)
    [victim, *_] = cell_processes(two_nodes)
    os.kill(victim, signal.SIGKILL)
    assert run.wait(400) == 0, (tmp_path / "run.log").read_text()[-3000:]
    assert len(records(results)) == 4
    recorded = journal_recorded(results)
    assert len(recorded) == 4 and len(set(recorded)) == 4
    from proc import events as journal_events

    assert not journal_events(results, "lost")  # Ray retried the killed task
    assert victim not in cell_processes(two_nodes)


# ---- harness worker killed mid-cell ----------------------------------------------------------
def test_a_worker_killed_mid_cell_is_retried_and_recorded_once(tmp_path, store) -> None:
    spec = write_spec(tmp_path, "wkill", sizes=[40], seeds=[0], epochs=15000, runs=16)
    assert harness("run", str(spec), "--store", store, "--enqueue", cwd=tmp_path
                   ).returncode == 0
    first = spawn(["worker", "--store", store, "--poll", "0.05"], tmp_path,
                  log=tmp_path / "first.log")
    wait_for(lambda: events(store, "wkill", "claimed"), proc=first, what="the claim")
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    second = spawn(["worker", "--store", store, "--until-empty", "--poll", "0.05"],
                   tmp_path, log=tmp_path / "second.log")
    assert second.wait(300) == 0  # the dead owner's lease is expired at once (same host)
    held = events(store, "wkill", "claimed")[0]["cell_id"]
    attempts = [e["attempt"] for e in events(store, "wkill", "claimed") if e["cell_id"] == held]
    assert attempts == [1, 2]
    assert recorded_once(store, "wkill", 2) and not events(store, "wkill", "refused")
    assert len(records(tmp_path / "results" / "wkill")) == 2


# ---- drivers ------------------------------------------------------------------------------
def test_a_driver_killed_and_rerun_gives_exact_totals(tmp_path, store) -> None:
    spec = write_spec(tmp_path, "dkill", sizes=[10, 20, 30, 40], seeds=[0, 1], epochs=4000,
                      runs=16)  # 16 cells
    run = spawn(["run", str(spec), "--store", store, "--workers", "2", "--no-report"],
                tmp_path)
    wait_for(lambda: len(events(store, "dkill", "recorded")) >= 2, timeout=240, proc=run,
             what="two recorded cells")
    os.killpg(run.pid, signal.SIGKILL)
    run.wait(10)
    assert wait_gone(run.pid, timeout=10) == []
    done_before = len(events(store, "dkill", "recorded"))
    assert done_before < 16
    rerun = harness("run", str(spec), "--store", store, "--workers", "2", "--no-report",
                    cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    ok, resumed = summary_line(rerun.stdout, "dkill")
    assert ok == 16 and resumed == done_before
    assert recorded_once(store, "dkill", 16)
    assert set(states(store, "dkill").values()) == {"done"}
    assert len(records(tmp_path / "results" / "dkill")) == 16


def test_two_drivers_on_one_store_compute_each_cell_once(tmp_path, store) -> None:
    # Two "machines": two folders, one store.
    spec_a = write_spec(tmp_path / "a", "pair", sizes=[10, 20, 30, 40], seeds=[0, 1],
                        epochs=3000, runs=16)
    spec_b = write_spec(tmp_path / "b", "pair", sizes=[10, 20, 30, 40], seeds=[0, 1],
                        epochs=3000, runs=16)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    first = spawn(["run", str(spec_a), "--store", store, "--no-report"], tmp_path / "a",
                  log=logs[0])
    wait_for(lambda: events(store, "pair", "claimed"), proc=first, what="the first claim")
    second = spawn(["run", str(spec_b), "--store", store, "--no-report"], tmp_path / "b",
                   log=logs[1])
    assert first.wait(400) == 0 and second.wait(400) == 0
    assert recorded_once(store, "pair", 16)
    owners = {e["owner"] for e in events(store, "pair", "recorded")}
    assert len(owners) == 2  # both computed some
    computed = 0
    for log in logs:
        ok, resumed = summary_line(log.read_text(), "pair")
        assert ok == 16
        computed += ok - resumed
    assert computed == 16
    a, b = records(tmp_path / "a" / "results" / "pair"), records(tmp_path / "b" / "results"
                                                                  / "pair")
    assert a == b and len(a) == 16  # each folder has every record, the same bytes' content


# ---- Optuna: a trial killed ------------------------------------------------------------------
def test_a_killed_optuna_trial_is_failed_and_retried_none_left_running(tmp_path, store
                                                                       ) -> None:
    import optuna

    from harness.runner.dbstore import sqlalchemy_url

    spec = write_spec(tmp_path, "tuned", sizes=[5], seeds=[0], epochs=3000, runs=8,
                      tuning={"trials": 3, "runs": 8})
    text = spec.read_text().replace("lambda: 1.0", "lambda: {tune: {scale: ratio, low: 0.0, "
                                    "high: 0.9}}")
    spec.write_text(text)
    env = {"HARNESS_TRIAL_HEARTBEAT": "1"}
    url = sqlalchemy_url(store)

    def running() -> bool:
        try:
            study = optuna.load_study(study_name="tuned/imm-size5", storage=url)
        except Exception:  # noqa: BLE001 - not created yet
            return False
        # a running trial whose lambda is drawn (killed before the draw, it has no
        # parameters to retry with, and its retry draws afresh)
        return any(t.state == optuna.trial.TrialState.RUNNING and t.params
                   for t in study.trials)

    run = spawn(["run", str(spec), "--store", store, "--no-report"], tmp_path, env=env)
    wait_for(running, timeout=240, proc=run, what="a running trial with its lambda drawn")
    os.killpg(run.pid, signal.SIGKILL)
    run.wait(10)
    # Every trial running at the kill (batched tuning runs several at once) is left RUNNING
    # by the dead process: the rerun fails each and retries it once with its parameters.
    killed = {t.number for t in optuna.load_study(study_name="tuned/imm-size5",
                                                  storage=url).trials
              if t.state == optuna.trial.TrialState.RUNNING}
    assert killed
    rerun = harness("run", str(spec), "--store", store, "--no-report", cwd=tmp_path, env=env)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    study = optuna.load_study(study_name="tuned/imm-size5", storage=url)
    by_state = {s: [t for t in study.trials if t.state == s] for s in optuna.trial.TrialState}
    assert {t.number for t in by_state[optuna.trial.TrialState.FAIL]} == killed
    assert not by_state[optuna.trial.TrialState.RUNNING]
    assert len(by_state[optuna.trial.TrialState.COMPLETE]) == 3
    for failed in by_state[optuna.trial.TrialState.FAIL]:
        if not failed.params:
            continue  # killed before its draw: the retry draws afresh
        retried = [t for t in study.trials
                   if t.system_attrs.get("failed_trial") == failed.number]
        assert len(retried) == 1 and retried[0].params == failed.params  # same parameters
        assert retried[0].state == optuna.trial.TrialState.COMPLETE
    assert recorded_once(store, "tuned", 2)


# ---- MLflow through a real server ------------------------------------------------------------
def test_mlflow_server_on_postgres_gets_one_finished_run_per_cell(tmp_path, postgres, store
                                                                  ) -> None:
    from mlflow import MlflowClient

    backend = postgres.create_db(f"mlflow_{int(time.time() * 1000) % 10**8}")
    server = MlflowServer(backend, tmp_path)
    try:
        spec = write_spec(tmp_path, "tracked", sizes=[2, 5, 10], seeds=[0, 1], epochs=2000,
                          runs=8, tracking=True)  # 12 cells
        uri = ["--tracking-uri", server.uri]
        assert harness("run", str(spec), "--store", store, *uri, "--enqueue", cwd=tmp_path
                       ).returncode == 0
        worker = spawn(["worker", "--store", store, "--until-empty", "--poll", "0.1"],
                       tmp_path, log=tmp_path / "worker.log")
        driver = harness("run", str(spec), "--store", store, *uri, "--no-report",
                         cwd=tmp_path)
        assert driver.returncode == 0, driver.stderr[-2000:]
        assert worker.wait(300) == 0, (tmp_path / "worker.log").read_text()[-2000:]
        client = MlflowClient(tracking_uri=server.uri)
        experiment = client.get_experiment_by_name("tracked")
        runs = client.search_runs([experiment.experiment_id], max_results=1000)
        children = [r for r in runs if "cell_id" in r.data.tags]
        cells = records(tmp_path / "results" / "tracked")
        assert sorted(r.data.tags["cell_id"] for r in children) == sorted(cells)
        assert {r.info.status for r in children} == {"FINISHED"}
        assert {r.data.tags["mlflow.parentRunId"] for r in children} == {
            r.info.run_id for r in runs if "cell_id" not in r.data.tags}  # one parent
        assert {r["mlflow_run_id"] for r in cells.values()} == {r.info.run_id
                                                                for r in children}
        by_owner = {e["owner"] for e in events(store, "tracked", "recorded")}
        assert len(by_owner) == 2  # the driver and the worker both logged cells
    finally:
        server.stop()
