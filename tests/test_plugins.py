"""Outside methods and tasks (issue 12, point 4 and 6): the example plugin installs as a
package and runs on every task; a broken plugin is one line and breaks nothing else; a
spec's own plugin module registers a method that also runs in worker processes; the
registry refuses a target that is not a Method."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import small_spec
from proc import HARNESS

from harness.registry import PluginError, Registry

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
EXAMPLE = ROOT / "examples" / "harness-pskd"


def harness(*args: str, cwd: Path, path: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    if path is not None:
        env["PYTHONPATH"] = str(path)
    return subprocess.run([*HARNESS, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The example plugin installed (a real pip install) into a folder of its own."""
    import shutil

    source = tmp_path_factory.mktemp("src") / "harness-pskd"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(source)],
                   check=True, capture_output=True, timeout=300)
    return target


def test_the_installed_plugin_is_listed_with_its_origin(installed, tmp_path) -> None:
    out = harness("list", "methods", cwd=tmp_path, path=installed)
    assert out.returncode == 0, out.stderr
    [line] = [x for x in out.stdout.splitlines() if x.startswith("pskd ")]
    assert "plugin harness-pskd 0.1.0, entry point 'pskd'" in line
    assert "built-in" in out.stdout  # the built-ins are still there


@pytest.mark.parametrize("spec", ["logistic", "grid_rl",
                                  pytest.param("ptb", marks=pytest.mark.heavy),
                                  pytest.param("glue", marks=pytest.mark.heavy)])
def test_the_plugins_smoke_specs_run_on_every_task(installed, tmp_path, spec) -> None:
    if spec in ("ptb", "glue") and not DATA.is_dir():
        pytest.skip(f"needs the data at {DATA}")
    out = harness("run", str(EXAMPLE / "specs" / f"{spec}.yaml"), "--data-dir", str(DATA),
                  "--no-report", "--set", f"output_dir={tmp_path / 'results'}", cwd=tmp_path,
                  path=installed)
    assert out.returncode == 0, out.stdout + out.stderr
    assert ", 0 failed, 0 skipped" in out.stdout, out.stdout
    records = [json.loads(p.read_text()) for p in tmp_path.glob("results/*/cells/*.json")]
    assert {r["method"] for r in records} >= {"baseline", "pskd"}
    assert all(r["status"] == "ok" for r in records)


def test_a_broken_plugin_is_one_line_and_breaks_nothing_else(tmp_path) -> None:
    site = tmp_path / "site"
    info = site / "brokenplug-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[harness.methods]\nbroken = brokenplug_missing.registration:METHOD\n")
    assert harness("--help", cwd=tmp_path, path=site).returncode == 0
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(small_spec(seeds=[0], sizes=[2])))
    ok = harness("validate", str(spec), cwd=tmp_path, path=site)
    assert ok.returncode == 0
    [warning] = ok.stderr.strip().splitlines()
    assert "'broken'" in warning and "brokenplug 0.1" in warning and "not loaded" in warning
    uses = tmp_path / "uses.yaml"
    uses.write_text(yaml.safe_dump(small_spec(methods=[{"name": "broken"}])))
    bad = harness("validate", str(uses), cwd=tmp_path, path=site)
    assert bad.returncode == 1 and "unknown method 'broken'" in bad.stderr


SPEC_PLUGIN = '''
from harness.methods.base import Method
from harness.methods.config import MethodParams
from harness.registry import register_method


class HalfParams(MethodParams):
    pass


class Half(Method):
    """The baseline with its primary loss halved (a plugin that needs nothing)."""

    name = "half"

    def weights(self, views, step):
        return 0.5, 0.0

    def term(self, views, step):
        return views.primary_loss(views.targets) * 0.0


register_method("half", Half, HalfParams, "baseline at half the learning rate")
'''


def test_a_spec_plugin_file_registers_a_method_that_runs_in_workers(tmp_path) -> None:
    (tmp_path / "half_plugin.py").write_text(SPEC_PLUGIN)
    spec = small_spec(plugins=["half_plugin.py"], seeds=[0, 1], sizes=[2, 5],
                      methods=[{"name": "baseline"}, {"name": "half", "lambda": 1.0}])
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    listed = harness("validate", str(path), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    out = harness("run", str(path), "--workers", "2", "--no-report", cwd=tmp_path)
    assert out.returncode == 0 and "8 ok, 0 failed" in out.stdout, out.stdout + out.stderr
    missing = tmp_path / "missing.yaml"
    missing.write_text(yaml.safe_dump({**spec, "plugins": ["nowhere.py"]}))
    bad = harness("validate", str(missing), cwd=tmp_path)
    assert bad.returncode == 1 and "plugins: plugin 'nowhere.py': no such file" in bad.stderr


def test_the_registry_checks_what_a_target_is() -> None:
    reg: Registry = Registry("method", base="harness.methods.base:Method",
                             config_base="harness.methods.config:MethodParams")
    reg.add("pathy", "pathlib:Path", config="harness.methods.config:MethodParams",
            origin="plugin test")
    with pytest.raises(PluginError, match="pathy .plugin test.: its class .* is not a "
                                           "subclass of harness.methods.base.Method"):
        reg.get("pathy")
    reg.add("noparams", "harness.methods.baseline:Baseline", config="pathlib:Path")
    with pytest.raises(PluginError, match="params model"):
        reg.config("noparams")
    reg.add("gone", "harness.nowhere:Thing", config="harness.methods.config:MethodParams")
    with pytest.raises(PluginError, match="cannot load its class"):
        reg.get("gone")
