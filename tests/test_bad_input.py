"""One clean line for bad input, never a traceback (issue 11, point 7): each case of the
issue and its cousins, through the real command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import small_spec
from proc import HARNESS

from harness.cli import main

PROGRESS = ("ok ", "failed ", "skipped ")


def one_line(text: str) -> str:
    """The one message line of ``text`` (a sweep's per-cell progress lines aside)."""
    lines = [line for line in text.strip().splitlines()
             if line.strip() and not line.startswith(PROGRESS)]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*HARNESS, *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


@pytest.mark.parametrize(("change", "words"), [
    ({"methods": [{"name": "noising", "lambda": float("inf")}]}, "finite number"),
    ({"task": {"name": "logistic", "params": {"lr": float("nan")}}}, "finite number"),
    ({"sizes": [True]}, "sizes[0]: expected an integer, got True"),
    ({"sizes": ["5"]}, "sizes[0]: expected an integer, got '5'"),
    ({"runs": 2.0}, "runs: expected an integer, got 2.0"),
    ({"task": {"name": "logistic", "params": {"epochs": "10"}}},
     "task.params.epochs: expected an integer"),
    ({"methods": [{"name": "noising", "lambda": "1.5"}]}, "lambda must be a number"),
])
def test_validate_rejects_non_finite_and_non_strict_numbers(write_spec, capsys, change, words
                                                            ) -> None:
    path = write_spec(small_spec(**change))
    assert main(["validate", str(path)]) == 1
    assert words in one_line(capsys.readouterr().err)


def test_run_of_an_infinite_lambda_fails_in_validation_not_in_json(write_spec, capsys) -> None:
    path = write_spec(small_spec(methods=[{"name": "noising", "lambda": float("inf")}]))
    assert main(["run", str(path)]) == 1
    assert "finite number" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize(("content", "words"), [
    (b"name: x\xff\xfe\n", "not UTF-8 text (byte 0xff at line 1)"),
    ("name: caf\xe9\n".encode("latin-1"), "not UTF-8"),
    (b"\x00\x01\x02binary", "NUL byte"),
    (b"a: &a [x, x, x, x, x, x, x, x, x, x]\n"
     + b"".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n".encode()
                for p, c in zip("abcdef", "bcdefg", strict=True)), "alias bomb"),
    (b"name: [unclosed\n", "line 2, column 1: invalid YAML"),
    (b"- just\n- a list\n", "a spec must be a mapping"),
])
def test_unreadable_specs_are_one_line(tmp_path, capsys, content, words) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    assert main(["validate", str(path)]) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith(str(path)) and words in line


def test_a_directory_a_huge_file_and_a_binary_reported_file(tmp_path, write_spec, capsys
                                                            ) -> None:
    assert main(["validate", str(tmp_path)]) == 1
    assert "is a directory" in one_line(capsys.readouterr().err)
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (2 << 20) + "\n")
    assert main(["validate", str(big)]) == 1
    assert "too large for a spec file" in one_line(capsys.readouterr().err)
    spec = write_spec(small_spec(seeds=[0], sizes=[2]))
    assert main(["run", str(spec), "--no-report"]) == 0
    capsys.readouterr()
    against = tmp_path / "reported.yaml"
    against.write_bytes(b"task: logistic\nsource: caf\xe9\n")
    assert main(["check", str(spec), "--against", str(against)]) == 1
    assert "not UTF-8" in one_line(capsys.readouterr().err)


def test_errors_are_capped_at_ten_lines(write_spec, capsys) -> None:
    methods = [{"name": "baseline", f"typo{i}": 1} for i in range(15)]
    path = write_spec(small_spec(methods=methods))
    assert main(["validate", str(path)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 10 and lines[-1] == "... and 6 more"


def test_command_line_mistakes(tmp_path, write_spec) -> None:
    spec = write_spec(small_spec(seeds=[0], sizes=[2]))
    bad_set = cli("run", str(spec), "--set", "runs=[", cwd=tmp_path)
    assert bad_set.returncode == 2
    assert "the value is not valid YAML" in one_line(bad_set.stderr)
    version = cli("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("harness ")
    # `harness schema | head -1`: the reader closes the pipe early.
    piped = subprocess.run(f"{' '.join(HARNESS)} schema | head -1", shell=True, cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
    assert piped.stdout == "{\n" and "Error" not in piped.stderr, piped.stderr
    warned = cli("run", str(spec), "--workers", "64", "--no-report", cwd=tmp_path)
    assert warned.returncode == 0 and "more than the" in warned.stderr


def test_report_outputs_that_cannot_be_written(write_spec, tmp_path, capsys) -> None:
    spec = write_spec(small_spec(seeds=[0], sizes=[2]))
    assert main(["run", str(spec), "--no-report"]) == 0
    capsys.readouterr()
    assert main(["report", str(spec), "--plot", str(tmp_path / "x.txt")]) == 1
    assert "unknown image type '.txt'" in one_line(capsys.readouterr().err)
    assert main(["report", str(spec), "-o", str(tmp_path)]) == 1
    assert "is a directory" in one_line(capsys.readouterr().err)


def test_an_incomplete_record_is_rerun_with_a_warning(write_spec, capsys) -> None:
    spec = write_spec(small_spec(seeds=[0], sizes=[2]))
    assert main(["run", str(spec), "--no-report"]) == 0
    cells = sorted(Path("results/tiny/cells").glob("*.json"))
    cells[0].write_text(json.dumps({"status": "ok"}))
    capsys.readouterr()
    assert main(["report", str(spec)]) == 0  # the report leaves it out, saying so
    assert "left out (the next run recomputes it)" in capsys.readouterr().err
    assert main(["run", str(spec), "--no-report"]) == 0
    captured = capsys.readouterr()
    assert "incomplete record" in captured.err and "(2 resumed)" in captured.out
    assert json.loads(cells[0].read_text())["status"] == "ok"
    assert "metrics" in json.loads(cells[0].read_text())


def test_a_corrupt_mlflow_database_is_one_warning(write_spec, tmp_path) -> None:
    spec = write_spec(small_spec(seeds=[0], sizes=[2], tracking={"enabled": True}))
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "mlflow.db").write_bytes(b"this is not a database" * 100)
    run = cli("run", str(spec), "--no-report", cwd=tmp_path)
    assert run.returncode == 0
    warning = one_line(run.stderr)
    assert warning.startswith("warning: MLflow tracking at sqlite") and "untracked" in warning


def test_an_unreachable_tracking_server_is_detected_within_ten_seconds(write_spec, tmp_path
                                                                       ) -> None:
    spec = write_spec(small_spec(seeds=[0], sizes=[2], tracking={"enabled": True}))
    clock = time.monotonic()
    run = cli("run", str(spec), "--no-report", "--tracking-uri", "http://10.255.255.1:5000",
              cwd=tmp_path)
    assert run.returncode == 0 and time.monotonic() - clock < 30
    warning = one_line(run.stderr)
    assert "http://10.255.255.1:5000" in warning and "running untracked" in warning
    records = [json.loads(p.read_text()) for p in tmp_path.glob("results/tiny/cells/*.json")]
    assert len(records) == 3 and not any(r["mlflow_run_id"] for r in records)


def chattr(flag: str, path: Path) -> bool:
    return subprocess.run(["chattr", "-R", flag, str(path)], capture_output=True).returncode == 0


def test_a_read_only_results_folder(tmp_path) -> None:
    # Permissions do not bind root (tests run as root in CI), so the folder is made
    # immutable (chattr +i): nothing can be created, renamed or removed in it.
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(small_spec(seeds=[0], sizes=[2])))
    assert cli("run", str(spec), "--no-report", cwd=tmp_path).returncode == 0
    results = tmp_path / "results"
    cells = sorted((results / "tiny" / "cells").glob("*.json"))
    if not chattr("+i", results):
        pytest.skip("chattr +i is not available here")
    try:
        before = {p: p.stat().st_mtime_ns for p in results.rglob("*")}
        resumed = cli("run", str(spec), cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr
        assert "every cell was already recorded; nothing written" in resumed.stdout
        assert "Traceback" not in resumed.stderr
        assert {p: p.stat().st_mtime_ns for p in results.rglob("*")} == before
        chattr("-i", results)
        cells[0].unlink()
        chattr("+i", results)
        pending = cli("run", str(spec), cwd=tmp_path)
        assert pending.returncode == 1
        assert "cannot write" in one_line(pending.stderr)
    finally:
        chattr("-i", results)


def test_the_harness_command_line_has_no_traceback_path(tmp_path) -> None:
    # The --help of every subcommand works (fast imports, no side effects).
    for command in ("run", "report", "check", "validate", "records", "list", "schema"):
        out = cli(command, "--help", cwd=tmp_path)
        assert out.returncode == 0 and "usage" in out.stdout, command
    assert sys.executable  # the interpreter the subprocesses used
