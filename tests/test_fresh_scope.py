"""--fresh clears no more than was asked: with --only the selected cells alone; never a
cell a live run holds (it refuses, one line, nothing cleared, and the live run records
its cell); never a file harness did not write (kept and named). Real processes and
files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import yaml
from proc import HARNESS, journal, spawn, wait_for


def harness(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    return subprocess.run([*HARNESS, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def spec(tmp_path: Path, **changes: Any) -> Path:
    data: dict[str, Any] = {
        "name": "tiny", "task": {"name": "logistic", "params": {"epochs": 20}},
        "methods": [{"name": "baseline"}, {"name": "noising", "lambda": 0.5},
                    {"name": "imm_sampled", "label": "imm", "lambda": 1.0}],
        "sizes": [2, 5], "seeds": [0, 1], "runs": 2, "tracking": {"enabled": False}}
    data.update(changes)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def finished(results: Path) -> dict[str, tuple[str, str]]:
    """{cell id: (label, finished)} of the records in the folder."""
    out = {}
    for path in (results / "cells").glob("*.json"):
        if len(path.stem) != 16:
            continue  # not a record (a user's file the test puts there)
        record = json.loads(path.read_text())
        out[path.stem] = (record["label"], record["finished"])
    return out


def test_fresh_only_clears_the_selected_cells(tmp_path: Path) -> None:
    path = spec(tmp_path)
    results = tmp_path / "results" / "tiny"
    assert harness("run", str(path), "--no-report", cwd=tmp_path).returncode == 0
    before = finished(results)
    assert len(before) == 12
    out = harness("run", str(path), "--no-report", "--fresh", "--only", "method=imm",
                  cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "4 ok, 0 failed, 0 skipped (0 resumed)" in out.stdout
    after = finished(results)
    assert set(after) == set(before)
    for cell, (label, when) in after.items():
        assert (when == before[cell][1]) == (label != "imm"), (label, cell)
    assert (results / "spec.yaml").is_file() and (results / "journal.jsonl").is_file()
    # Unscoped, everything harness wrote goes; what it did not write is kept and named.
    (results / "cells" / "analysis.json").write_text("{}")
    (results / "cells" / "readme.txt").write_text("mine")
    out = harness("run", str(path), "--no-report", "--fresh", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "12 ok, 0 failed, 0 skipped (0 resumed)" in out.stdout
    assert (f"note: --fresh kept 2 file(s) harness did not make in {results}: "
            "cells/analysis.json, cells/readme.txt") in out.stderr
    assert (results / "cells" / "analysis.json").read_text() == "{}"
    assert all(when not in {w for _, w in before.values()} for _, when in
               finished(results).values())


def test_fresh_refuses_a_cell_a_live_run_holds(tmp_path: Path) -> None:
    path = spec(tmp_path, methods=[{"name": "baseline"}], sizes=[50], seeds=[0], runs=300,
                task={"name": "logistic", "params": {"epochs": 3000}})
    results = tmp_path / "results" / "tiny"
    live = spawn(["run", str(path), "--no-report"], tmp_path, log=tmp_path / "live.log")
    try:
        wait_for(lambda: any((results / "claims").glob("*.lock")), proc=live,
                 what="the live run's claim")
        os.kill(live.pid, signal.SIGSTOP)  # holds its claim, silent but alive
        try:
            for extra in ([], ["--only", "method=baseline"]):
                out = harness("run", str(path), "--no-report", "--fresh", *extra,
                              cwd=tmp_path)
                assert out.returncode == 1
                [line] = out.stderr.strip().splitlines()
                assert line.startswith(f"error: --fresh: baseline size=50 seed=0 in "
                                       f"{results} is held by a live run (")
                assert "nothing was cleared" in line
                assert any((results / "claims").glob("*.lock"))
        finally:
            os.kill(live.pid, signal.SIGCONT)
        assert live.wait(timeout=600) == 0
    finally:
        if live.poll() is None:
            live.kill()
    events = [e["event"] for e in journal(results)]
    assert events.count("recorded") == 1 and "discarded" not in events
    assert len(list((results / "cells").glob("*.json"))) == 1
