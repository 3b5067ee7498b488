"""The runner: grid expansion and cell ids, records, failures, determinism, resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import small_spec

from harness.cli import main
from harness.runner import GridError, expand, run_spec
from harness.runner.store import ResultsStore
from harness.spec import load_spec, validate_spec

RECORD_KEYS = {
    "schema", "cell_id", "spec", "task", "method", "label", "size", "seed", "runs", "status",
    "reason", "traceback", "lambda", "lambda_source", "tuning", "config", "metrics", "summary",
    "timings", "git_commit", "versions", "started", "finished", "mlflow_run_id", "data",
    "threads", "machine", "code", "curves",
}


def ids(spec_data: dict, **only: object) -> list[str]:
    return [c.cell_id for c in expand(validate_spec(spec_data), only)]


def records(results: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (results / "cells").glob("*.json")}


def metrics(results: Path) -> dict[str, dict]:
    return {cid: r["metrics"] for cid, r in records(results).items()}


# ---- grid -------------------------------------------------------------------------------
def test_grid_counts_order_and_only_filters() -> None:
    spec = validate_spec(small_spec())
    cells = expand(spec)
    assert len(cells) == 3 * 2 * 2
    assert [(c.label, c.size, c.seed) for c in cells[:4]] == [
        ("baseline", 2, 0), ("baseline", 2, 1), ("baseline", 5, 0), ("baseline", 5, 1)]
    assert len(set(c.cell_id for c in cells)) == len(cells)
    assert {c.label for c in expand(spec, {"method": "imm"})} == {"imm"}
    assert {c.label for c in expand(spec, {"method": "imm_sampled"})} == {"imm"}
    both = expand(spec, [("method", "imm"), ("method", "baseline"), ("size", 5)])
    assert len(both) == 4 and {c.size for c in both} == {5}
    assert len(expand(spec, {"seed": [1], "size": [2, 5]})) == 6
    with pytest.raises(GridError, match="unknown key 'lr'"):
        expand(spec, {"lr": 1})
    with pytest.raises(GridError, match="no such size"):
        expand(spec, {"size": 3})


def test_first_cell_builds_a_methods_cell_as_a_worker_does() -> None:
    # Benchmarks rerun part of a cell through first_cell: the method's first cell, its
    # lambda, and only the task params they override changed.
    from harness.runner.execute import first_cell

    spec = validate_spec(small_spec())
    cell, task, method = first_cell(spec, "imm", epochs=77)
    assert cell.cell_id == expand(spec, {"method": "imm"})[0].cell_id
    assert (method.name, method.lam) == ("imm_sampled", cell.entry.lambda_)
    assert task.params.epochs == 77
    assert task.params.model_copy(update={"epochs": 40}) == (
        spec.task.params)
    _, _, noising = first_cell(spec, "noising")  # a lambda schedule, at the first size (2)
    ratio = 0.818 - 0.0111 * 2
    assert noising.lam == pytest.approx(ratio / (1 - ratio))
    with pytest.raises(GridError, match="no such method"):
        first_cell(spec, "nosuch")


def test_cell_id_stable_sensitive_and_format_independent(write_spec) -> None:
    base = small_spec()
    assert ids(base) == ids(small_spec())
    changed_epochs = small_spec(task={"name": "logistic", "params": {"epochs": 41}})
    assert not set(ids(base)) & set(ids(changed_epochs))
    assert ids(small_spec(runs=5))[0] != ids(base)[0]
    other_lambda = small_spec()
    other_lambda["methods"][1]["lambda"] = 2.0
    assert ids(other_lambda, method="imm") != ids(base, method="imm")
    assert ids(other_lambda, method="baseline") == ids(base, method="baseline")
    override = small_spec()
    override["methods"][2]["task_params"] = {"restricted_quality": "low"}
    assert ids(override, method="noising") != ids(base, method="noising")
    assert ids(override, method="imm") == ids(base, method="imm")
    # Params at their defaults are not hashed (a new setting keeps old results); a value
    # other than the default is.
    explicit = small_spec()
    explicit["methods"][1]["params"] = {"single_sample": "own"}
    assert ids(explicit, method="imm") == ids(base, method="imm")
    explicit["methods"][1]["params"] = {"single_sample": "sampled"}
    assert ids(explicit, method="imm") != ids(base, method="imm")
    # The same spec written differently: flow style, reordered keys, 1 for 1.0, an explicit
    # default label and an explicit default param.
    reformatted = write_spec(small_spec(), "a.yaml").read_text()
    text = """
name: tiny
seeds: [0, 1]
runs: 4
sizes: [2, 5]
tracking: {enabled: false}
methods:
  - {name: baseline, label: baseline}
  - {lambda: 1, label: imm, name: imm_sampled, params: {k_every: 1}}
  - name: noising
    lambda: {intercept: 0.818, slope: -0.0111, schedule: linear_ratio}
task: {params: {epochs: 40, lr: 1}, name: logistic}
"""
    path = write_spec({}, "b.yaml")
    path.write_text(text)
    assert reformatted != text
    assert [c.cell_id for c in expand(load_spec(path))] == ids(base)


# ---- running ----------------------------------------------------------------------------
def test_record_contract_and_determinism_in_process_and_in_workers(write_spec) -> None:
    spec_a = validate_spec(small_spec(output_dir="a", seeds=[0]))
    spec_b = validate_spec(small_spec(output_dir="b", seeds=[0]))
    first = run_spec(spec_a)
    second = run_spec(spec_b, workers=2)
    assert first.exit_code == second.exit_code == 0
    assert first.counts["ok"] == 6 and first.resumed == 0
    assert metrics(Path("a/tiny")) == metrics(Path("b/tiny"))
    record = records(Path("a/tiny"))[expand(spec_a, {"method": "noising", "size": 5})[0].cell_id]
    assert set(record) == RECORD_KEYS
    assert record["status"] == "ok" and record["lambda_source"] == "schedule"
    assert record["lambda"] == pytest.approx(0.7625 / 0.2375)
    assert len(record["metrics"]["accuracy"]) == 4
    assert set(record["summary"]["accuracy"]) == {"mean", "median", "p10", "p90", "std", "n"}
    curve = record["curves"]["train_loss"]  # the objective every epoch (40 epochs)
    assert curve["steps"] == list(range(1, 41)) and curve["values"][-1] < curve["values"][0]
    twin = records(Path("b/tiny"))[record["cell_id"]]["curves"]  # computed in a worker
    assert twin == record["curves"]
    assert (Path("a/tiny") / "spec.yaml").is_file()
    again = run_spec(spec_a)  # resume: nothing recomputed
    assert again.resumed == 6 and metrics(Path("a/tiny")) == metrics(Path("b/tiny"))


def test_diverging_cell_is_recorded_as_failed_and_the_others_complete(write_spec, capsys
                                                                      ) -> None:
    data = small_spec(seeds=[0], task={"name": "logistic",
                                       "params": {"epochs": 20, "loss_form": "additive"}})
    data["methods"][1]["lambda"] = 1e300
    assert main(["run", str(write_spec(data)), "--no-report"]) == 1
    by_label: dict[str, list[dict]] = {}
    for record in records(Path("results/tiny")).values():
        by_label.setdefault(record["label"], []).append(record)
    assert len(sum(by_label.values(), [])) == 6
    assert all(r["status"] == "failed" and r["reason"].startswith("diverged:")
               and r["metrics"] == {} for r in by_label["imm"])
    # its learning curve is kept, not finite values as null (records are strict JSON)
    assert all(None in r["curves"]["train_loss"]["values"] for r in by_label["imm"])
    assert all(r["status"] == "ok" for r in by_label["baseline"] + by_label["noising"])
    out = capsys.readouterr().out
    assert "4 ok, 2 failed" in out and "failed: imm size=2 seed=0: diverged:" in out


def test_records_of_another_setting_stay_and_the_report_reads_only_its_grid(write_spec,
                                                                           capsys) -> None:
    # Issue 11, point 1: a run with a changed setting writes its own records beside the
    # others; neither report mixes them in, and going back to the first setting resumes.
    spec = validate_spec(small_spec(seeds=[0], sizes=[2]))
    run_spec(spec)
    changed = validate_spec(small_spec(seeds=[0], sizes=[2], runs=3))
    run_spec(changed, only={"method": "baseline"})
    store = ResultsStore.for_spec(spec)
    assert len(list(store.cells_dir.glob("*.json"))) == 4
    path = write_spec(small_spec(seeds=[0], sizes=[2]))
    assert main(["report", str(path), "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    assert "1 record(s)" in err and "harness records" in err and "left out" not in out
    assert {row.split(",")[4] for row in out.splitlines()[1:]} == {"4"}  # n: runs of `spec`
    assert run_spec(spec).resumed == 3


def test_resume_after_sigkill_keeps_finished_cells_and_matches_a_clean_run(write_spec) -> None:
    data = small_spec(
        task={"name": "logistic", "params": {"epochs": 300}},
        methods=[{"name": "baseline"}, {"name": "imm_sampled", "label": "imm", "lambda": 1.0}],
        sizes=[2, 5, 10, 20, 30], seeds=[0, 1, 2], runs=16,
    )
    path = write_spec(data)
    command = [sys.executable, "-m", "harness.cli", "run", str(path), "--no-report"]
    cells_dir = Path("results/tiny/cells")
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not list(cells_dir.glob("*.json")) and time.monotonic() < deadline:
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in cells_dir.glob("*.json")}
    assert 0 < len(before) < 30

    assert subprocess.run(command, capture_output=True).returncode == 0
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in cells_dir.glob("*.json")}
    assert len(after) == 30 and not list(cells_dir.glob(".*.tmp"))
    assert all(after[name] == before[name] for name in before)

    clean = run_spec(validate_spec({**data, "output_dir": "clean"}))
    assert clean.counts["ok"] == 30
    assert metrics(Path("clean/tiny")) == metrics(Path("results/tiny"))


def test_a_cell_failed_by_an_error_is_retried_on_resume(write_spec, monkeypatch):
    """A cell that failed with an error is rerun by a plain rerun (no --fresh), while a
    diverged cell stays recorded as a result."""
    from harness.tasks.logistic.task import LogisticTask

    spec = validate_spec(small_spec(seeds=[0], sizes=[2], methods=[{"name": "baseline"}]))
    real_run = LogisticTask.run

    def broken(self, *args, **kwargs):
        raise RuntimeError("a bug since fixed")

    monkeypatch.setattr(LogisticTask, "run", broken)
    first = run_spec(spec)
    [record] = records(Path("results/tiny")).values()
    assert first.exit_code == 1 and record["status"] == "failed"
    assert record["reason"] == "RuntimeError: a bug since fixed"
    monkeypatch.setattr(LogisticTask, "run", real_run)
    second = run_spec(spec)
    [record] = records(Path("results/tiny")).values()
    assert second.exit_code == 0 and second.resumed == 0 and record["status"] == "ok"


def test_records_lists_every_record_in_or_out_of_the_grid(write_spec, capsys) -> None:
    spec = validate_spec(small_spec(seeds=[0], sizes=[2]))
    run_spec(spec)
    run_spec(validate_spec(small_spec(seeds=[0], sizes=[2], runs=3)), only={"method": "imm"})
    assert main(["records", str(write_spec(small_spec(seeds=[0], sizes=[2])))]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines()[2:] if line.startswith("|")]
    marks = sorted(row.split("|")[2].strip() for row in rows)
    assert marks == ["no", "yes", "yes", "yes"]
