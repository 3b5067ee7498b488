"""The plugin contract, checked at run time and at validate: a term of the wrong shape (a
scalar, or one value per class) fails its cells with one line naming the method and both
shapes (it used to run "ok"); an installed plugin whose class cannot be imported, and a
GLUE spec without the glue extra, fail `harness validate` and `harness run` before
anything is computed; a spec whose every cell failed writes no report. (A task's metrics
against the declared ones: tests/test_code_identity.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import small_spec

HARNESS = [sys.executable, "-m", "harness.cli"]

SPEC_PLUGIN = '''
import numpy as np
import torch

from harness.methods.base import Method
from harness.methods.config import MethodParams
from harness.registry import register_method


class TermParams(MethodParams):
    uses_lambda = True


class ScalarTerm(Method):
    name = "scalar_term"

    def term(self, views, step):
        return views.primary_loss(views.targets).mean()  # a scalar: broadcasts silently


class ClassTerm(Method):
    name = "class_term"

    def term(self, views, step):
        return -views.log_q()  # (..., classes): one value per class, not per item


register_method("scalar_term", ScalarTerm, TermParams, "a scalar term")
register_method("class_term", ClassTerm, TermParams, "a term per class")
'''


def harness(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*HARNESS, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**os.environ, **(env or {})})


def write(tmp_path: Path, name: str, data: dict) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def records(tmp_path: Path, name: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in (tmp_path / "results" / name / "cells")
            .glob("*.json")]


@pytest.mark.parametrize("task, shape", [("logistic", "(2, 2)"), ("grid_rl", None)])
def test_a_term_of_the_wrong_shape_fails_its_cells_naming_both_shapes(tmp_path, task,
                                                                     shape) -> None:
    (tmp_path / "plug.py").write_text(SPEC_PLUGIN)
    from harness.registry import TASKS

    params = {"epochs": 20} if task == "logistic" else dict(
        TASKS.config("grid_rl").contract_params)  # (runs, size) items on logistic
    data = small_spec(name=f"shape_{task}", plugins=["plug.py"], seeds=[0], sizes=[2],
                      runs=2, task={"name": task, "params": params},
                      methods=[{"name": "scalar_term", "lambda": 1.0},
                               {"name": "class_term", "lambda": 1.0}])
    done = harness("run", str(write(tmp_path, f"shape_{task}", data)), cwd=tmp_path)
    assert done.returncode == 1
    found = {r["method"]: r for r in records(tmp_path, f"shape_{task}")}
    assert {r["status"] for r in found.values()} == {"failed"}
    scalar, wide = found["scalar_term"]["reason"], found["class_term"]["reason"]
    assert scalar.startswith("ContractError: method scalar_term: its term has shape () "
                             "but the primary loss per item has shape ("), scalar
    assert wide.startswith("ContractError: method class_term: its term has shape ("), wide
    if shape is not None:
        assert f"per item has shape {shape}" in scalar
    # every cell failed: no report is written, and the run says so
    assert "report: not written: every cell failed" in done.stdout
    assert not (tmp_path / "results" / f"shape_{task}" / "report.md").exists()


@pytest.fixture
def site(tmp_path) -> Path:
    """An installed plugin (dist-info with entry points) whose method's class cannot be
    imported (a dependency it lacks); its params model imports fine."""
    site = tmp_path / "site"
    package = site / "lostdep"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "registration.py").write_text(
        "from harness.registry import Component\n"
        "METHOD = Component('lostdep.method:Lost', 'lostdep.config:LostParams', 'lost')\n")
    (package / "config.py").write_text(
        "from harness.methods.config import MethodParams\n"
        "class LostParams(MethodParams):\n    uses_lambda = False\n")
    (package / "method.py").write_text("import a_dependency_not_installed  # noqa\n")
    info = site / "lostdep-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lostdep\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[harness.methods]\nlost = lostdep.registration:METHOD\n")
    return site


def test_a_plugin_whose_class_cannot_be_imported_fails_validate(tmp_path, site) -> None:
    env = {"PYTHONPATH": str(site)}
    path = write(tmp_path, "lost", small_spec(name="lost", seeds=[0], sizes=[2],
                                              methods=[{"name": "lost"}]))
    done = harness("validate", str(path), cwd=tmp_path, env=env)
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"{path}: method lost: lost (plugin lostdep 0.1, entry point "
                           "'lost'): cannot load its class 'lostdep.method:Lost': "
                           "ModuleNotFoundError"), line
    run = harness("run", str(path), cwd=tmp_path, env=env)
    assert run.returncode == 1 and "nothing was run" in run.stderr
    assert not (tmp_path / "results" / "lost" / "cells").is_dir() or not any(
        (tmp_path / "results" / "lost" / "cells").iterdir())


BLOCK_TRANSFORMERS = '''
import importlib.abc
import sys


class Absent(importlib.abc.MetaPathFinder):
    """As if the glue extra were not installed: transformers cannot be found."""

    def find_spec(self, name, path=None, target=None):
        if name == "transformers" or name.startswith("transformers."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, Absent())
'''


def test_a_glue_spec_without_the_glue_extra_fails_validate_and_run(tmp_path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCK_TRANSFORMERS)
    env = {"PYTHONPATH": str(site)}
    check = subprocess.run([sys.executable, "-c", "import transformers"], env={
        **os.environ, **env}, capture_output=True, text=True)
    assert "No module named 'transformers'" in check.stderr  # the extra is "missing"
    data = {"name": "glue", "task": {"name": "glue_bert", "params": {"tasks": ["rte"]}},
            "methods": [{"name": "baseline"}], "sizes": [8], "seeds": [0], "runs": 1,
            "tracking": {"enabled": False}}
    path = write(tmp_path, "glue", data)
    done = harness("validate", str(path), cwd=tmp_path, env=env)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"{path}: task glue_bert needs the 'glue' extra (transformers not installed): "
        'pip install -e ".[glue]" in a checkout of harness, or pip install '
        '"imm-harness[glue]"')
    run = harness("run", str(path), cwd=tmp_path, env=env)
    assert run.returncode == 1 and "nothing was run" in run.stderr
    assert not list(tmp_path.glob("results/glue/report.*"))
    assert harness("validate", str(path), cwd=tmp_path).returncode == 0  # with the extra


def test_a_wrong_term_in_a_group_fails_only_its_own_cell(tmp_path) -> None:
    """Logistic cells of one size train as one group program; a plugin method whose term
    has the wrong shape stops that program, and its group-mates are then trained alone:
    the baseline is ok, with the numbers of a baseline run on its own."""
    (tmp_path / "plug.py").write_text(SPEC_PLUGIN)
    common = dict(plugins=["plug.py"], seeds=[0], sizes=[2], runs=2,
                  task={"name": "logistic", "params": {"epochs": 20}})
    mixed = small_spec(name="mixed", methods=[{"name": "baseline"},
                                              {"name": "class_term", "lambda": 1.0}],
                       **common)
    alone = small_spec(name="alone", methods=[{"name": "baseline"}], **common)
    done = harness("run", str(write(tmp_path, "mixed", mixed)), cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    found = {r["method"]: r for r in records(tmp_path, "mixed")}
    assert found["class_term"]["status"] == "failed"
    assert found["class_term"]["reason"].startswith("ContractError: method class_term")
    assert found["baseline"]["status"] == "ok", found["baseline"]["reason"]
    assert found["baseline"]["timings"]["group_cells"] == 2  # it was in the group
    assert harness("run", str(write(tmp_path, "alone", alone)), cwd=tmp_path).returncode == 0
    (own,) = records(tmp_path, "alone")
    assert own["metrics"] == found["baseline"]["metrics"]
    assert own["curves"] == found["baseline"]["curves"]
