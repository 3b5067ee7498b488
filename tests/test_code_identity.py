"""Every number belongs to its code: each record names the code that computed it (the
harness's own commit, never the working directory's; the task's and method's provider
and sources' sha256), and a cell whose task or method code changed is recomputed, with
a note, its old record kept aside (or kept on purpose with --reuse-changed-code).

All with real processes: a plugin file beside the spec, a real pip-installed plugin
package, and a git checkout of a copy of the harness's own source tree."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from proc import HARNESS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "harness-pskd"
GIT = ["git", "-c", "user.email=test@example.org", "-c", "user.name=test",
       "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false"]

PLUGIN = '''
from harness.methods.baseline import Baseline
from harness.methods.config import BaselineParams
from harness.registry import register_method


class Mine(Baseline):
    name = "mine"


register_method("mine", Mine, BaselineParams)
'''


def harness(*args: str, cwd: Path, pythonpath: Path | None = None
            ) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([*HARNESS, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def tiny(plugins: list[str] | None = None, methods: list[dict] | None = None,
         **changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "tiny", "task": {"name": "logistic", "params": {"epochs": 20}},
        "methods": methods or [{"name": "baseline"}, {"name": "mine"}],
        "sizes": [2, 5], "seeds": [0], "runs": 2, "tracking": {"enabled": False}}
    if plugins:
        spec["plugins"] = plugins
    spec.update(changes)
    return spec


def write(folder: Path, spec: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def records(results: Path) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in (results / "cells").glob("*.json")}


def by_method(results: Path) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for record in records(results).values():
        out.setdefault(record["method"], []).append(record)
    return out


def notes(out: subprocess.CompletedProcess) -> list[str]:
    return [line for line in out.stderr.splitlines() if line.startswith("note:")]


# ---- a plugin file beside the spec ------------------------------------------------------
def test_an_edited_plugin_file_is_recomputed_with_a_note(tmp_path: Path) -> None:
    plugin = tmp_path / "mine.py"
    plugin.write_text(PLUGIN, encoding="utf-8")
    spec = write(tmp_path, tiny(["mine.py"]))
    results = tmp_path / "results" / "tiny"
    first = harness("run", str(spec), "--no-report", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before = by_method(results)
    mine = before["mine"][0]["code"]["method"]
    assert mine["file"] == str(plugin.resolve()) and mine["dist"] is None
    assert before["baseline"][0]["code"]["method"]["dist"] == "imm-harness"

    plugin.write_text(PLUGIN + "\n# a comment changes the sources' hash\n", encoding="utf-8")
    second = harness("run", str(spec), "--no-report", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "4 ok, 0 failed, 0 skipped (2 resumed)" in second.stdout
    [line] = notes(second)
    assert line.startswith("note: method mine: sources ") and "2 cell(s)" in line
    assert "recomputed" in line and "--reuse-changed-code" in line
    after = by_method(results)
    assert {r["finished"] for r in after["baseline"]} == \
        {r["finished"] for r in before["baseline"]}  # untouched
    assert after["mine"][0]["code"]["method"]["sha256"] != mine["sha256"]
    kept = sorted((results / "cells" / "replaced").glob("*.json"))
    assert len(kept) == 2  # the old records, not lost
    assert {json.loads(p.read_text())["finished"] for p in kept} == \
        {r["finished"] for r in before["mine"]}

    plugin.write_text(PLUGIN + "\n# edited again\n", encoding="utf-8")
    third = harness("run", str(spec), "--no-report", "--reuse-changed-code", cwd=tmp_path)
    assert third.returncode == 0, third.stderr
    assert "(4 resumed)" in third.stdout
    [line] = notes(third)
    assert "2 cell(s) recorded with the earlier code are kept (--reuse-changed-code)" in line
    assert {r["finished"] for r in by_method(results)["mine"]} == \
        {r["finished"] for r in after["mine"]}


def test_a_task_whose_metrics_are_not_the_declared_ones_fails_its_cell(
        tmp_path: Path) -> None:
    (tmp_path / "renamed.py").write_text('''
from harness.registry import register_task
from harness.tasks.logistic.config import LogisticParams
from harness.tasks.logistic.task import LogisticTask


class Renamed(LogisticTask):
    def run(self, method, request, progress=None):
        out = dict(super().run(method, request, progress))
        out["acc"] = out.pop("accuracy")
        return out


class Dropped(LogisticTask):
    def run(self, method, request, progress=None):
        out = dict(super().run(method, request, progress))
        del out["restricted_ce"]
        return out


register_task("renamed", Renamed, LogisticParams)
register_task("dropped", Dropped, LogisticParams)
''', encoding="utf-8")
    for task, reason in (
            ("renamed", "task Renamed returned metric(s) 'acc' that its params do not "
                        "declare (declared: accuracy, log_loss, restricted_ce)"),
            ("dropped", "task Dropped did not return declared metric(s) 'restricted_ce' "
                        "(returned: accuracy, log_loss)")):
        spec = write(tmp_path / task, tiny(["../renamed.py"], [{"name": "baseline"}],
                                           task={"name": task, "params": {"epochs": 5}},
                                           sizes=[2]))
        out = harness("run", str(spec), "--no-report", cwd=spec.parent)
        assert out.returncode == 1
        [record] = records(spec.parent / "results" / "tiny").values()
        assert record["status"] == "failed"
        assert record["reason"] == f"ValueError: {reason}"


# ---- a real plugin package -----------------------------------------------------------------
def _install(source: Path, target: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(source)],
                   check=True, capture_output=True, timeout=300)
    return target


def test_an_edited_or_upgraded_plugin_package_is_recomputed(tmp_path: Path) -> None:
    source = tmp_path / "src" / "harness-pskd"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    site = _install(source, tmp_path / "site")
    spec = write(tmp_path / "work", tiny(methods=[{"name": "baseline"}, {"name": "pskd"}]))
    results = tmp_path / "work" / "results" / "tiny"
    first = harness("run", str(spec), "--no-report", cwd=spec.parent, pythonpath=site)
    assert first.returncode == 0, first.stderr
    pskd = by_method(results)["pskd"][0]["code"]["method"]
    assert (pskd["dist"], pskd["version"]) == ("harness-pskd", "0.1.0")
    assert pskd["files"] == 4  # the package's four modules

    # An edit of the installed package (as an editable install would see it).
    with (site / "harness_pskd" / "method.py").open("a", encoding="utf-8") as handle:
        handle.write("\n# edited\n")
    edited = harness("run", str(spec), "--no-report", cwd=spec.parent, pythonpath=site)
    assert edited.returncode == 0, edited.stderr
    assert "(2 resumed)" in edited.stdout
    [line] = notes(edited)
    assert line.startswith("note: method pskd: sources ") and "2 cell(s)" in line

    # The same sources under a bumped version: the provider changed.
    pyproject = source / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('version = "0.1.0"',
                                                      'version = "0.1.1"'))
    (source / "harness_pskd" / "method.py").write_text(
        (site / "harness_pskd" / "method.py").read_text())
    bumped = _install(source, tmp_path / "site2")
    upgraded = harness("run", str(spec), "--no-report", cwd=spec.parent, pythonpath=bumped)
    assert upgraded.returncode == 0, upgraded.stderr
    [line] = notes(upgraded)
    assert "method pskd: harness-pskd 0.1.0 -> harness-pskd 0.1.1" in line
    assert "sources" not in line  # the same files
    assert "(2 resumed)" in upgraded.stdout
    assert by_method(results)["pskd"][0]["code"]["method"]["version"] == "0.1.1"
    assert len(list((results / "cells" / "replaced").glob("*.json"))) == 4


# ---- the harness's own source tree ---------------------------------------------------------
@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A git checkout holding a copy of the harness package (the source tree a test may
    edit), committed."""
    src = tmp_path / "src"
    shutil.copytree(ROOT / "harness", src / "harness",
                    ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([*GIT, "init", "-q", str(src)], check=True)
    subprocess.run([*GIT, "-C", str(src), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(src), "commit", "-qm", "harness"], check=True)
    return src


def head(folder: Path) -> str:
    return subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()


def test_the_commit_is_the_harness_checkouts_wherever_it_runs(checkout: Path,
                                                              tmp_path: Path) -> None:
    spec = tiny(methods=[{"name": "baseline"}], sizes=[2])
    outside = write(tmp_path / "plain", spec)  # no repository around it
    other = tmp_path / "project"  # another project's repository
    write(other, spec)
    subprocess.run([*GIT, "init", "-q", str(other)], check=True)
    subprocess.run([*GIT, "-C", str(other), "commit", "-q", "--allow-empty", "-m", "x"],
                   check=True)
    for folder in (outside.parent, other):
        out = harness("run", "spec.yaml", "--no-report", cwd=folder, pythonpath=checkout)
        assert out.returncode == 0, out.stderr
        [record] = records(folder / "results" / "tiny").values()
        assert record["code"]["harness"]["commit"] == head(checkout) != head(other)
        assert record["code"]["harness"]["dirty"] is False
        assert record["git_commit"] == head(checkout)

    # An installed copy (no checkout of its own), even inside another repository: none.
    installed = other / "site"
    shutil.copytree(checkout / "harness", installed / "harness")
    out = harness("run", "spec.yaml", "--no-report", "--fresh", cwd=other,
                  pythonpath=installed)
    assert out.returncode == 0, out.stderr
    [record] = records(other / "results" / "tiny").values()
    assert record["code"]["harness"]["commit"] is None and record["git_commit"] is None


def test_an_edited_built_in_is_recomputed_a_harness_change_alone_is_not(
        checkout: Path, tmp_path: Path) -> None:
    spec = write(tmp_path / "work", tiny(methods=[{"name": "baseline"},
                                                  {"name": "noising", "lambda": 0.5}]))
    results = spec.parent / "results" / "tiny"

    def run() -> subprocess.CompletedProcess:
        out = harness("run", "spec.yaml", "--no-report", cwd=spec.parent, pythonpath=checkout)
        assert out.returncode == 0, out.stderr
        return out

    run()
    first = records(results)
    # The harness's own code elsewhere (not the task's or a method's): recorded, resumed.
    with (checkout / "harness" / "runner" / "sweep.py").open("a") as handle:
        handle.write("\n# a harness change\n")
    out = run()
    assert "(4 resumed)" in out.stdout and not notes(out)
    # A built-in method's module: its cells only.
    with (checkout / "harness" / "methods" / "noising.py").open("a") as handle:
        handle.write("\n# a method change\n")
    out = run()
    assert "(2 resumed)" in out.stdout
    [line] = notes(out)
    assert line.startswith("note: method noising: sources ")
    now = records(results)
    assert all(now[i]["finished"] == first[i]["finished"] for i in now
               if now[i]["method"] == "baseline")
    assert all(r["code"]["harness"]["dirty"] is True for r in now.values()
               if r["method"] == "noising")
    # A module the built-in method imports (harness.methods.base): every method.
    with (checkout / "harness" / "methods" / "base.py").open("a") as handle:
        handle.write("\n# the base of every method\n")
    out = run()
    assert "(0 resumed)" in out.stdout
    # The built-in task's subpackage: every cell, one note naming the task.
    with (checkout / "harness" / "tasks" / "logistic" / "geometry.py").open("a") as handle:
        handle.write("\n# a task change\n")
    out = run()
    assert "(0 resumed)" in out.stdout
    assert all(line.startswith("note: task logistic: sources ") for line in notes(out))


# ---- records checked against their cell ------------------------------------------------
def test_a_record_of_another_cell_is_unreadable_and_rerun(tmp_path: Path) -> None:
    spec = write(tmp_path, tiny(methods=[{"name": "baseline"}, {"name": "noising",
                                                                "lambda": 0.5}]))
    results = tmp_path / "results" / "tiny"
    assert harness("run", str(spec), "--no-report", cwd=tmp_path).returncode == 0
    first, second, third = sorted(results.glob("cells/*.json"))[:3]
    for path, field, value in ((first, "task", "ptb_lstm"), (second, "seed", 7),
                               (third, "metrics", {"acc": [0.5, 0.5]})):
        record = json.loads(path.read_text())
        record[field] = value
        path.write_text(json.dumps(record))
    report = harness("report", str(results), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    warned = [line for line in report.stderr.splitlines() if line.startswith("warning:")]
    assert len(warned) == 3 and all("left out" in line for line in warned)
    assert "it is the record of task 'ptb_lstm', this cell's is 'logistic'" in report.stderr
    assert "it is the record of seed 7, this cell's is 0" in report.stderr
    assert "lack 'accuracy', which task 'logistic' declares" in report.stderr
    out = harness("run", str(spec), "--no-report", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "4 ok, 0 failed, 0 skipped (1 resumed)" in out.stdout
    assert out.stderr.count("not this cell's record") == 3  # once each, then rerun
    assert all(json.loads(p.read_text())["task"] == "logistic"
               for p in results.glob("cells/*.json"))


def test_leaderboard_refuses_a_folder_given_twice(tmp_path: Path) -> None:
    spec = write(tmp_path, tiny(methods=[{"name": "baseline"}], sizes=[2]))
    assert harness("run", str(spec), "--no-report", cwd=tmp_path).returncode == 0
    out = harness("leaderboard", "results/tiny", "results/tiny/", cwd=tmp_path)
    assert out.returncode == 1 and not out.stdout
    assert out.stderr.strip().splitlines() == [
        "error: results/tiny is given twice (results/tiny and results/tiny/): each results "
        "folder counts once on a board"]
    out = harness("leaderboard", str(spec), "results/tiny", cwd=tmp_path)
    assert out.returncode == 1 and "is given twice" in out.stderr


def test_reports_and_checks_say_when_code_identities_mix(tmp_path: Path) -> None:
    plugin = tmp_path / "mine.py"
    plugin.write_text(PLUGIN, encoding="utf-8")
    spec = write(tmp_path, tiny(["mine.py"]))
    assert harness("run", str(spec), "--no-report", cwd=tmp_path).returncode == 0
    shutil.copytree(tmp_path / "results" / "tiny", tmp_path / "old")
    plugin.write_text(PLUGIN + "\n# changed\n", encoding="utf-8")
    assert harness("run", str(spec), "--no-report", "--only", "size=2",
                   cwd=tmp_path).returncode == 0
    for command in (["report", "results/tiny"], ["leaderboard", "results/tiny"]):
        out = harness(*command, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert ("note: these results mix code identities: method mine: more than one "
                "version of its code (results/tiny)") in out.stderr.splitlines()
    out = harness("check", "results/tiny", "--against-results", "old", "--format", "json",
                  cwd=tmp_path)
    [line] = [x for x in out.stderr.splitlines() if "NEW and OLD" in x]
    assert line.startswith("note: NEW and OLD differ in code: method mine: sources ")
    rows = json.loads(out.stdout)["regression"]["rows"]
    mine = [r for r in rows if r["label"] == "mine" and r["size"] == 2]
    assert mine and all(not r["expect_equal"] and "code identity" in r["why"] for r in mine)
