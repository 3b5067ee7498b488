"""`harness init`: a new spec validates and runs; a new method and a new task plugin
install with pip (a real install into a folder of their own) and pass harness's contract
tests as generated, with no edit; their code is ruff-clean; nothing existing is
overwritten and a bad name is one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from proc import HARNESS

from harness.registry import TASKS, discover
from harness.scaffold import init_spec
from harness.spec import load_spec

BIN = Path(sys.executable).parent


def harness(*args: str, cwd: Path, path: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("HARNESS_DATA_DIR", None)
    if path is not None:
        env["PYTHONPATH"] = str(path)
    return subprocess.run([*HARNESS, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def plugins(tmp_path_factory) -> tuple[Path, Path]:
    """`harness init method my_method` and `harness init task my_task`, both installed by
    pip into one target folder; returns (the folder holding the packages, the target)."""
    where = tmp_path_factory.mktemp("new")
    for kind, name in (("method", "my_method"), ("task", "my_task")):
        out = harness("init", kind, name, cwd=where)
        assert out.returncode == 0, out.stderr
        assert f"pip install -e harness-{name.replace('_', '-')}" in out.stdout
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--target", str(target),
                    str(where / "harness-my-method"), str(where / "harness-my-task")],
                   check=True, capture_output=True, timeout=600)
    return where, target


def test_the_new_plugins_are_listed_with_their_origin(plugins) -> None:
    where, target = plugins
    methods = harness("list", "methods", cwd=where, path=target)
    tasks = harness("list", "tasks", cwd=where, path=target)
    assert "plugin harness-my-method 0.1.0, entry point 'my_method'" in methods.stdout
    assert "plugin harness-my-task 0.1.0, entry point 'my_task'" in tasks.stdout


@pytest.mark.parametrize("folder", ["harness-my-method", "harness-my-task"])
def test_the_generated_contract_tests_pass_with_no_edit(plugins, folder) -> None:
    where, target = plugins
    env = {**os.environ, "PYTHONPATH": str(target), "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("HARNESS_DATA_DIR", None)  # the data tasks skip, saying so: keeps this quick
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "-rs"], cwd=where / folder, env=env, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    summary = out.stdout.strip().splitlines()[-1]
    passed = int(summary.split(" passed")[0].split()[-1])
    # the new component against logistic, grid_rl and the other new component at least
    assert passed >= 9, summary
    assert "failed" not in summary and "error" not in summary, summary


def test_the_generated_code_is_ruff_clean(plugins) -> None:
    where, _ = plugins
    ruff = BIN / "ruff"
    if not ruff.exists():
        pytest.skip("ruff is not installed (the test extra)")
    out = subprocess.run([str(ruff), "check", "--no-cache", "--select", "E,F,W,I,UP,B",
                          "--line-length", "100", "harness-my-method", "harness-my-task"],
                         cwd=where, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_task_plugins_spec_runs(plugins, tmp_path) -> None:
    where, target = plugins
    spec = where / "harness-my-task" / "specs" / "my_task.yaml"
    out = harness("run", str(spec), "--set", "task.params.epochs=30", "--set", "runs=4",
                  "--no-report", cwd=tmp_path, path=target)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "6 ok, 0 failed, 0 skipped" in out.stdout, out.stdout
    # results go to the spec's project folder: the plugin package (it has a pyproject)
    cells = where / "harness-my-task" / "results" / "my_task" / "cells"
    records = [json.loads(p.read_text()) for p in cells.glob("*.json")]
    assert {r["method"] for r in records} == {"baseline", "reverse_kd", "imm_sampled"}
    assert all(len(r["metrics"]["accuracy"]) == 4 for r in records)


def test_a_generated_spec_validates_and_runs(tmp_path) -> None:
    out = harness("init", "spec", "my_study", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    spec = tmp_path / "my_study.yaml"
    assert harness("validate", str(spec), cwd=tmp_path).returncode == 0
    run = harness("run", str(spec), cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "4 ok, 0 failed, 0 skipped" in run.stdout, run.stdout
    assert (tmp_path / "results" / "my_study" / "report.md").is_file()


def test_a_spec_for_every_registered_task_validates(tmp_path) -> None:
    discover()
    for task in TASKS.names():
        path = init_spec(f"s_{task}", tmp_path, task=task,
                         methods=("baseline", "reverse_kd", "imm_sampled"))
        spec = load_spec(path)
        assert spec.task.name == task and [m.name for m in spec.methods] == [
            "baseline", "reverse_kd", "imm_sampled"]
        text = yaml.safe_load(path.read_text())
        assert text["sizes"] == [TASKS.config(task).contract_size,
                                 2 * TASKS.config(task).contract_size]


@pytest.mark.parametrize(("args", "message"), [
    (["method", "My-Method"], "method name 'My-Method': use lower-case letters"),
    (["method", "imm_sampled"], "method name 'imm_sampled' is taken"),
    (["task", "logistic"], "task name 'logistic' is taken"),
    (["spec", "../up"], "spec name '../up': use letters, digits"),
    (["spec", "x", "--task", "logistik"], "logistik"),
    (["spec", "x", "--sizes", "5,a"], "--sizes '5,a': expected whole numbers"),
])
def test_a_bad_name_is_one_line_and_writes_nothing(tmp_path, args, message) -> None:
    out = harness("init", *args, cwd=tmp_path)
    assert out.returncode == 1
    [line] = out.stderr.strip().splitlines()
    assert message in line, line
    assert list(tmp_path.iterdir()) == []


def test_nothing_existing_is_overwritten(tmp_path) -> None:
    (tmp_path / "harness-my-method").mkdir()
    (tmp_path / "mine.yaml").write_text("name: mine\n")
    out = harness("init", "method", "my_method", cwd=tmp_path)
    assert out.returncode == 1 and "already exists" in out.stderr
    assert list((tmp_path / "harness-my-method").iterdir()) == []
    out = harness("init", "spec", "mine", cwd=tmp_path)
    assert out.returncode == 1 and "already exists" in out.stderr
    assert (tmp_path / "mine.yaml").read_text() == "name: mine\n"
