"""What a run ends with and what it leaves, through the real command line: the headline
table and the report files; the figures (log size axis, offset methods, one size on a
categorical axis, the spec's plot: section); one results folder whatever the working
directory (real processes); MLflow artifacts and learning curves in a real store; the
Optuna study's objective and lambda in a real study; --dry-run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import small_spec

from harness.cli import main
from harness.report.load import load_results
from harness.report.plot import figure, log_axis, method_offsets, plot_settings
from harness.spec import SpecError, load_spec, validate_spec

HARNESS = [sys.executable, "-m", "harness.cli"]


def write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


# ---- figures ---------------------------------------------------------------------------
def test_the_size_axis_is_logarithmic_from_a_decade_and_methods_never_share_an_x():
    assert log_axis([2, 5, 10, 50]) and log_axis([5, 50]) and not log_axis([10, 20, 40])
    assert not log_axis([2, 50], "linear") and log_axis([10, 20], "log")
    assert not log_axis([20])
    sizes = [2, 5, 10, 15, 20, 30, 40, 50]
    dx = method_offsets(sizes, 4, log=True)
    assert dx.sum() == pytest.approx(0.0) and np.all(np.diff(dx) > 0)
    # shifted by a factor: no method's point reaches the next size's band
    spread = 10.0 ** (dx[-1] - dx[0])
    assert 1.0 < spread < min(b / a for a, b in zip(sizes, sizes[1:], strict=False)) ** 0.5


@pytest.fixture
def figure1(tmp_path: Path) -> Path:
    """A real (small) run of a logistic spec whose sizes span a decade."""
    spec = write(tmp_path / "proj" / "specs" / "fig.yaml", small_spec(
        name="fig", sizes=[2, 5, 20], seeds=[0], runs=3,
        task={"name": "logistic", "params": {"epochs": 30}},
        plot={"title": "IMM ({metric})", "methods": ["imm", "baseline"],
              "labels": {"imm": "IMM (ours)"}, "y_labels": {"accuracy": "test accuracy (%)"}}))
    (tmp_path / "proj" / "pyproject.toml").write_text("")
    assert main(["run", str(spec), "--no-report"]) == 0
    return tmp_path / "proj" / "results" / "fig"


def test_figures_follow_the_spec_plot_section(figure1: Path):
    rs = load_results(figure1, note=False)
    settings = plot_settings(rs)
    fig = figure(rs, "accuracy", settings)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert ax.get_title() == "IMM (accuracy)" and ax.get_ylabel() == "test accuracy (%)"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["IMM (ours)", "baseline"]  # the section's methods, order and names
    lines = [ln for ln in ax.get_lines() if ln.get_label() in legend]
    xs = np.array([ln.get_xdata() for ln in lines], dtype=float)
    assert np.all(xs[0] < xs[1])  # offset at every size: bars never on top of each other
    assert np.allclose(np.sqrt(xs[0] * xs[1]), [2, 5, 20])  # symmetric about the size


def test_one_size_gets_a_categorical_axis(tmp_path: Path):
    spec = write(tmp_path / "one.yaml", small_spec(name="one", sizes=[5], seeds=[0],
                                                    runs=3))
    assert main(["run", str(spec), "--no-report"]) == 0
    rs = load_results(tmp_path / "results" / "one", note=False)
    ax = figure(rs, "accuracy").axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["baseline", "imm", "noising"]
    assert ax.get_xlabel() == "method (N = 5)" and ax.get_xscale() == "linear"


def test_a_wrong_plot_section_is_one_line_naming_the_field(tmp_path: Path):
    for plot, expected in (
            ({"methods": ["imn"]}, "plot.methods: unknown method label 'imn' (labels: "
                                   "baseline, imm, noising)"),
            ({"y_labels": {"acc": "x"}}, "plot.y_labels: unknown metric 'acc'"),
            ({"x_scale": "logarithmic"}, "plot.x_scale: Input should be 'auto', 'log' or "
                                         "'linear'"),
            ({"colour": "red"}, "plot.colour: unknown field")):
        path = write(tmp_path / "bad.yaml", small_spec(plot=plot))
        with pytest.raises(SpecError) as err:
            load_spec(path)
        assert len(err.value.lines) == 1 and expected in err.value.lines[0], err.value.lines
        assert err.value.lines[0].startswith(str(path))


def test_the_plot_section_is_not_in_any_cell_id():
    from harness.cells.grid import expand

    plain = [c.cell_id for c in expand(validate_spec(small_spec()))]
    styled = [c.cell_id for c in expand(validate_spec(small_spec(
        plot={"title": "x", "x_scale": "linear", "methods": ["imm"]})))]
    assert plain == styled


# ---- the end of a run ------------------------------------------------------------------
def test_a_run_ends_with_the_headline_table_and_the_reports(tmp_path: Path, capsys):
    spec = write(tmp_path / "spec.yaml", small_spec(seeds=[0], runs=3))
    assert main(["run", str(spec)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.startswith("tiny: accuracy (%), median "
                                                                  "[p10, p90] of 3 runs"))
    header = next(ln for ln in lines[head:] if ln.startswith("┃"))
    assert [w for w in header.replace("┃", " ").split()] == ["N", "baseline", "imm", "noising"]
    rows = [ln for ln in lines[head:] if ln.startswith("│")]
    assert [r.split("│")[1].strip() for r in rows] == ["2", "5"]
    rs = load_results(tmp_path / "results" / "tiny", note=False)
    median = rs.pooled("accuracy")[("imm", 5)].median * 100
    assert f"{median:.1f} [" in rows[1]  # the table's numbers are the pooled medians
    results = tmp_path / "results" / "tiny"
    assert f"report: {results / 'report.html'} (every metric, provenance; opens offline)" in out
    for name in ("report.html", "report.md", "report.csv", "plot.png", "plots/accuracy.svg",
                 "plots/accuracy.pdf", "plots/log_loss.png"):
        assert (results / name).stat().st_size > 1000, name
    svg = (results / "plots" / "accuracy.svg").read_bytes()
    assert b"<dc:date>" not in svg  # no clock in the figures: same records, same files


# ---- which folder: real processes from two working directories --------------------------
def harness(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("HARNESS_DATA_DIR", None)
    return subprocess.run([*HARNESS, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_commands_agree_from_any_working_directory(tmp_path: Path):
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)  # the marker of a clone's root
    spec = write(project / "specs" / "tiny.yaml", small_spec(seeds=[0], runs=2))
    reported = write(project / "reported.yaml", {
        "source": "a test", "task": "logistic", "metric": "accuracy", "rules": [
            {"rule": "band", "label": "baseline", "size": 5, "value": 0.5, "plus": 0.5,
             "minus": 0.5}]})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    results = project / "results" / "tiny"
    first = harness(["run", "specs/tiny.yaml", "--no-report"], cwd=project)
    assert first.returncode == 0, first.stderr
    why = (f"results {results} (output_dir 'results' is relative to {project}, the spec's "
           "project folder (it holds .git))")
    assert why in first.stdout
    answers = {}
    for cwd, path in ((project, "specs/tiny.yaml"), (elsewhere, str(spec))):
        status = harness(["status", path], cwd)
        report = harness(["report", path], cwd)
        check = harness(["check", path, "--against", str(reported)], cwd)
        again = harness(["run", path, "--no-report"], cwd)
        assert status.returncode == report.returncode == check.returncode == 0
        assert again.returncode == 0
        assert why in status.stdout and why in report.stderr and why in check.stderr
        answers[cwd] = (status.stdout, report.stdout, check.stdout,
                        again.stdout.splitlines()[0].split(" in ")[0])
    assert answers[project] == answers[elsewhere]
    assert answers[project][0].startswith("tiny: 6 ok of 6 cells")
    assert answers[project][3] == "tiny: 6 ok, 0 failed, 0 skipped (6 resumed)"
    assert not (elsewhere / "results").exists()  # nothing recomputed into ./results


# ---- MLflow ----------------------------------------------------------------------------
def test_mlflow_has_artifacts_learning_curves_and_the_report(tmp_path: Path, monkeypatch):
    from mlflow import MlflowClient

    somewhere = tmp_path / "cwd"
    somewhere.mkdir()
    monkeypatch.chdir(somewhere)
    spec = write(tmp_path / "spec.yaml", small_spec(
        seeds=[0], sizes=[5], runs=2, tracking={"enabled": True},
        task={"name": "logistic", "params": {"epochs": 250}}))
    assert main(["run", str(spec)]) == 0
    output = tmp_path / "results"
    client = MlflowClient(tracking_uri=f"sqlite:///{output / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny")
    parent_id = json.loads((output / "tiny" / "tracking.json").read_text())["parent_run_id"]
    children = client.search_runs([experiment.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'")
    assert len(children) == 3
    for run in children:
        files = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert files == {"record.json"}  # the curves are step metrics, charted by MLflow
        record_path = client.download_artifacts(run.info.run_id, "record.json", str(tmp_path))
        record = json.loads(Path(record_path).read_text())
        assert record["cell_id"] == run.data.tags["cell_id"]
        history = client.get_metric_history(run.info.run_id, "train_loss")
        steps = [m.step for m in history]
        assert steps == record["curves"]["train_loss"]["steps"]
        assert len(steps) == 84 and steps[0] == 3 and steps[-1] == 250  # every 3rd + last
        assert [m.value for m in history] == pytest.approx(
            record["curves"]["train_loss"]["values"])
        assert history[-1].value < history[0].value  # it learns
    parent = {a.path for a in client.list_artifacts(parent_id)}
    assert {"spec.yaml", "report"} <= parent
    report = {a.path for a in client.list_artifacts(parent_id, "report")}
    assert {"report/report.html", "report/report.md", "report/report.csv",
            "report/plots"} <= report
    assert (output / "mlartifacts").is_dir() and not (somewhere / "mlruns").exists()


# ---- Optuna ----------------------------------------------------------------------------
def test_the_optuna_study_names_its_objective_and_shows_lambda(tmp_path: Path, monkeypatch):
    import optuna

    monkeypatch.chdir(tmp_path)
    spec = write(tmp_path / "tune.yaml", small_spec(
        name="tune", seeds=[0], sizes=[5], runs=2,
        methods=[{"name": "imm_sampled", "label": "imm",
                  "lambda": {"tune": {"scale": "ratio", "low": 0.0, "high": 0.9}}}],
        tuning={"trials": 3, "runs": 2}))
    assert main(["run", str(spec), "--no-report"]) == 0
    storage = f"sqlite:///{tmp_path / 'results' / 'tune' / 'optuna.db'}"
    study = optuna.load_study(study_name="imm-size5", storage=storage)
    assert study.metric_names == ["validation accuracy (mean)"]
    trials = study.get_trials()
    assert len(trials) == 3
    for trial in trials:
        ratio = trial.params["ratio"]
        assert trial.user_attrs["lambda"] == pytest.approx(ratio / (1 - ratio))


# ---- dry run ---------------------------------------------------------------------------
def test_dry_run_writes_nothing_and_estimates_from_earlier_records(tmp_path: Path, capsys):
    spec = write(tmp_path / "spec.yaml", small_spec())
    assert main(["run", str(spec), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert not (tmp_path / "results").exists()  # nothing written, not even a folder
    assert "grid: 3 method(s) x 2 size(s) x 2 seed(s) = 12 cells of 4 run(s) each" in out
    assert "resumed: 0 cell(s) already recorded; to compute: 12" in out
    assert "estimate: none (no earlier records of task logistic" in out

    assert main(["run", str(spec), "--only", "seed=0", "--no-report"]) == 0
    capsys.readouterr()
    assert main(["run", str(spec), "--dry-run", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "resumed: 6 cell(s) already recorded; to compute: 6" in out
    row = next(ln for ln in out.splitlines() if ln.startswith("│ imm "))
    assert [c.strip() for c in row.split("│")[1:-1]] == ["imm", "1/2", "1/2"]
    line = next(ln for ln in out.splitlines() if ln.startswith("estimate: "))
    assert "for 6 cell(s)" in line and "with 2 worker(s)" in line
    assert "from 6 earlier record(s) of task logistic" in line and "6 by same settings" in line
    records = [json.loads(p.read_text())
               for p in (tmp_path / "results" / "tiny" / "cells").glob("*.json")]
    # seed 1 = seed 0's settings; a cell trained in a group counts its share of its time
    expected = sum(r["timings"]["train_s"] / r["timings"].get("group_cells", 1)
                   for r in records)
    assert any(r["timings"].get("group_cells", 1) > 1 for r in records)
    shown = float(line.split("estimate: ")[1].split("s of cell time")[0])
    assert shown == pytest.approx(expected, abs=1.0)


def test_the_project_folder_is_the_repository_then_a_package_then_the_spec_folder(tmp_path):
    from harness.spec.paths import project_folder

    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    plugin = repo / "examples" / "plugin"
    write(plugin / "specs" / "a.yaml", {})
    (plugin / "pyproject.toml").write_text("")
    assert project_folder(plugin / "specs" / "a.yaml") == (
        repo, "the spec's project folder (it holds .git)")  # the clone's results/
    package = tmp_path / "package"
    write(package / "specs" / "b.yaml", {})
    (package / "pyproject.toml").write_text("")
    assert project_folder(package / "specs" / "b.yaml")[0] == package
    write(tmp_path / "loose" / "c.yaml", {})
    assert project_folder(tmp_path / "loose" / "c.yaml") == (
        tmp_path / "loose", "the spec's folder (no .git or pyproject.toml above it)")
