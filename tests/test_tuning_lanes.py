"""Tuning in lanes (harness.tuning_lanes): studies of different sizes tuned by two real
processes at once give the lambdas one process gives; a helper that dies leaves its
size to the main process; a stopped run leaves no helper behind."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import threading
from datetime import datetime
from pathlib import Path

import optuna
import pytest
from conftest import small_spec
from proc import spawn, wait_for, wait_gone

from harness.runner import expand
from harness.runner.store import ResultsStore
from harness.spec import validate_spec
from harness.tuning import study_name, tune_lambdas
from harness.tuning_lanes import sizes_largest_first, tune_in_lanes

SIZES = (30, 2)


def tuned_spec(name: str, epochs: int = 2500, trials: int = 4) -> dict:
    """Two tuned methods at two sizes; the larger size's tuning takes a few seconds."""
    tune = {"tune": {"scale": "ratio", "low": 0.0, "high": 0.9}}
    return small_spec(
        name=name,
        task={"name": "logistic", "params": {"epochs": epochs}},
        methods=[{"name": "imm_sampled", "label": "imm", "lambda": tune},
                 {"name": "reverse_kd", "lambda": tune}],
        sizes=list(SIZES), seeds=[0], runs=4,
        tuning={"trials": trials, "runs": 20, "seed": 3, "sampler": "random"})


def prepared(spec_data: dict):
    spec = validate_spec(spec_data)
    store = ResultsStore.for_spec(spec)
    store.claim_folders()
    store.prepare(spec, [], {})
    return spec, store, [c for c in expand(spec) if c.tuned]


def running(db: Path, name: str) -> bool:
    """Whether study ``name`` in the sqlite file ``db`` has a trial running, read with
    sqlite itself (opening Optuna's storage would create its tables, racing the run's
    processes on a new file)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            (count,) = conn.execute(
                "SELECT COUNT(*) FROM trials JOIN studies USING (study_id) "
                "WHERE study_name = ? AND state = 'RUNNING'", (name,)).fetchone()
    except sqlite3.OperationalError:  # no file, no tables yet, or busy
        return False
    return count > 0


def intervals(storage: str, name: str) -> list[tuple[datetime, datetime]]:
    study = optuna.load_study(study_name=name, storage=storage)
    return [(t.datetime_start, t.datetime_complete) for t in study.trials]


def test_sizes_are_taken_largest_first():
    spec, _, cells = prepared(small_spec(sizes=[5, 40, 2], methods=[
        {"name": "reverse_kd", "lambda": "tune"}], seeds=[0]))
    assert [part[0].size for part in sizes_largest_first(cells)] == [40, 5, 2]


def test_two_lanes_tune_at_once_and_choose_what_one_process_chooses(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec, store, cells = prepared(tuned_spec("lanes"))
    lanes = tune_in_lanes(spec, cells, store.optuna_url, None, lanes=2)
    alone_spec, alone_store, alone_cells = prepared(tuned_spec("alone"))
    alone = tune_lambdas(alone_spec, alone_cells, alone_store.optuna_url)
    assert set(lanes) == set(alone) == {(label, size) for label in ("imm", "reverse_kd")
                                        for size in SIZES}
    for key, choice in alone.items():
        assert choice.error is None and lanes[key].error is None
        assert lanes[key].value == choice.value, key
        assert lanes[key].tuning["best_value"] == choice.tuning["best_value"], key
    # The two sizes were tuned at the same time: in two processes.
    large = intervals(store.optuna_url, study_name("imm", SIZES[0]))
    small = intervals(store.optuna_url, study_name("imm", SIZES[1]))
    assert max(s for s, _ in large) < min(e for _, e in small)
    assert max(s for s, _ in small) < min(e for _, e in large)


@pytest.mark.heavy
def test_a_killed_helper_leaves_its_size_to_the_main_process(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec, store, cells = prepared(tuned_spec("killed", epochs=6000))
    out: dict = {}
    thread = threading.Thread(target=lambda: out.update(tune_in_lanes(
        spec, cells, store.optuna_url, None, lanes=2)))
    thread.start()
    small = study_name("imm", SIZES[1])
    db = Path(store.optuna_url.removeprefix("sqlite:///"))
    # the helper's size (the smaller) has a trial running
    wait_for(lambda: running(db, small), timeout=60, what="the helper's trials")
    (helper,) = multiprocessing.active_children()
    os.kill(helper.pid, signal.SIGKILL)
    thread.join(120)
    assert not thread.is_alive()
    assert set(out) == {(label, size) for label in ("imm", "reverse_kd") for size in SIZES}
    assert [c.error for c in out.values() if c.error] == []
    study = optuna.load_study(study_name=small, storage=store.optuna_url)
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 4
    assert optuna.trial.TrialState.RUNNING not in states  # the killed ones: failed
    assert not multiprocessing.active_children()


@pytest.mark.heavy
def test_ctrl_c_during_lanes_leaves_no_process_and_a_rerun_finishes(write_spec, tmp_path):
    path = write_spec(tuned_spec("stopped", epochs=6000))
    results = tmp_path / "results" / "stopped"
    proc = spawn(["run", str(path)], tmp_path, {"MLFLOW_DISABLE_TELEMETRY": "true"},
                 log=tmp_path / "run.log")
    try:
        def both_sizes_tuning() -> bool:
            return all(running(results / "optuna.db", study_name("imm", size))
                       for size in SIZES)

        wait_for(both_sizes_tuning, timeout=90, proc=proc, what="two lanes tuning")
        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C: the whole group
        assert proc.wait(timeout=20) != 0
        assert wait_gone(proc.pid) == []
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    rerun = spawn(["run", str(path)], tmp_path, {"MLFLOW_DISABLE_TELEMETRY": "true"},
                  log=tmp_path / "rerun.log")
    assert rerun.wait(timeout=240) == 0, (tmp_path / "rerun.log").read_text()[-2000:]
    assert "4 ok, 0 failed" in (tmp_path / "rerun.log").read_text()
