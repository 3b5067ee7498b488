"""Results folders with hostile content: links to a user's files where harness writes
(refused, one line, the user's file untouched), a record nested 200,000 levels deep, a
record path that is a folder, non-UTF-8 bytes in journal.jsonl, temp files of another
live run, labels that are spreadsheet formulas or HTML. Each is one clean line (or
handled) and never a traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import small_spec

from harness.atomic import (
    LinkRefused,
    append_no_follow,
    atomic_write_text,
    fresh_file,
    temp_prefix,
)
from harness.cli import main

USER_TEXT = "the user's own file\n"


def spec(write_spec, **changes) -> Path:
    return write_spec(small_spec(seeds=[0], sizes=[2], runs=2,
                                 task={"name": "logistic", "params": {"epochs": 20}},
                                 **changes))


@pytest.fixture
def ran(write_spec, capsys) -> tuple[Path, Path]:
    """A spec run once in tmp_path: (spec path, results folder)."""
    path = spec(write_spec)
    assert main(["run", str(path), "--no-report"]) == 0
    capsys.readouterr()
    return path, Path("results/tiny").resolve()


def user_file(tmp_path: Path) -> Path:
    target = tmp_path / "mine.txt"
    target.write_text(USER_TEXT)
    return target


# ---- links ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["report.md", "report.csv", "report.html", "plot.png",
                                  "plots", "journal.jsonl",
                                  "spec.yaml", "grid.json", "tracking.json", "optuna.db",
                                  "cells/{cell}.json", "cells", "claims", "checkpoints",
                                  "checkpoints/{cell}"])
def test_a_link_where_harness_writes_is_refused_in_one_line(tmp_path, ran, capsys,
                                                            name) -> None:
    spec_path, results = ran
    cell = sorted((results / "cells").glob("*.json"))[0].stem
    link = results / name.format(cell=cell)
    for record in (results / "cells").glob("*.json"):  # so that the run has work to do
        record.unlink()
    target = user_file(tmp_path)
    if link.is_dir():  # a folder of the user's instead of harness's
        shutil.rmtree(link)
        target = tmp_path / "folder"
        target.mkdir()
        (target / "keep.txt").write_text(USER_TEXT)
    link.unlink(missing_ok=True)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    assert main(["run", str(spec_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    errors = [x for x in err if x.startswith("error")]
    assert len(errors) == 1 and errors[0] == err[-1], err
    assert "is a symbolic link" in errors[0] and link.name in errors[0]
    assert "nothing was run" in errors[0]
    if target.is_dir():
        assert [p.name for p in target.iterdir()] == ["keep.txt"]
    else:
        assert target.read_text() == USER_TEXT


def test_links_planted_during_a_run_are_never_written_through(tmp_path, ran, capsys) -> None:
    _, results = ran
    from harness.report.run_report import write_run_report
    from harness.runner.store import ResultsStore

    target = user_file(tmp_path)
    write_run_report(results)
    for name in ("report.md", "report.html", "plot.png", "plots/accuracy.png",
                 "plots/accuracy.svg"):
        (results / name).unlink(missing_ok=True)
        (results / name).symlink_to(target)
        with pytest.raises(LinkRefused, match="is a symbolic link"):
            write_run_report(results)
        (results / name).unlink()
    (results / "journal.jsonl").unlink()
    (results / "journal.jsonl").symlink_to(target)
    store = ResultsStore(results)
    store.journal("started", "x")
    store.journal("recorded", "x")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "journal.jsonl: is a symbolic link" in err[0]  # said once
    assert target.read_text() == USER_TEXT


def test_write_helpers_never_follow_a_link(tmp_path) -> None:
    target = user_file(tmp_path)
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(LinkRefused):
        atomic_write_text(link, "x")
    with pytest.raises(LinkRefused):
        append_no_follow(link, b"x")
    with fresh_file(link) as handle:  # a temp name of harness's own: the link is replaced
        handle.write(b"new")
    assert target.read_text() == USER_TEXT and link.read_bytes() == b"new"
    assert not link.is_symlink()


def test_an_mlflow_db_link_in_the_output_folder_leaves_the_run_untracked(tmp_path,
                                                                        write_spec,
                                                                        capsys) -> None:
    path = spec(write_spec, tracking={"enabled": True})
    target = user_file(tmp_path)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "mlflow.db").symlink_to(target)
    assert main(["run", str(path), "--no-report"]) == 0
    warnings = [x for x in capsys.readouterr().err.splitlines() if x.startswith("warning")]
    assert len(warnings) == 1 and "mlflow.db: is a symbolic link" in warnings[0]
    assert target.read_text() == USER_TEXT


# ---- records and journals that are not what they should be ---------------------------------
def test_a_record_nested_200000_deep_is_one_warning_everywhere(tmp_path, ran, capsys) -> None:
    spec_path, results = ran
    victim = sorted((results / "cells").glob("*.json"))[0]
    victim.write_text("[" * 200_000 + "]" * 200_000)
    main(["records", str(results)])
    out = capsys.readouterr().out
    assert "nested too deeply" in out
    copy = tmp_path / "copy"
    shutil.copytree(results, copy)
    for argv in (["report", str(results)], ["leaderboard", str(results)],
                 ["check", str(results), "--against-results", str(copy)]):
        main(argv)
        err = capsys.readouterr().err
        assert "nested too deeply" in err and "Traceback" not in err
    assert main(["run", str(spec_path), "--no-report"]) == 0  # rerun, rewritten
    err = capsys.readouterr().err
    assert "unreadable record (nested too deeply" in err
    assert json.loads(victim.read_text())["status"] == "ok"


def test_a_record_path_that_is_a_folder_is_refused_before_computing(ran, capsys) -> None:
    spec_path, results = ran
    victim = sorted((results / "cells").glob("*.json"))[0]
    victim.unlink()
    victim.mkdir()
    assert main(["run", str(spec_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{victim.name}: is not a file" in err[0]
    assert "nothing was run" in err[0]


def test_non_utf8_bytes_in_the_journal_are_skipped(tmp_path, ran, capsys) -> None:
    spec_path, results = ran
    with open(results / "journal.jsonl", "ab") as handle:
        handle.write(b"\xff\xfe not json \x80\n")
    copy = tmp_path / "copy"
    shutil.copytree(results, copy)
    assert main(["leaderboard", str(results)]) == 0
    assert main(["check", str(results), "--against-results", str(copy)]) == 0
    assert main(["run", str(spec_path), "--no-report"]) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_records_of_a_folder_that_is_no_results_folder_exits_1(tmp_path, capsys) -> None:
    assert main(["records", "/"]) == 1
    assert capsys.readouterr().err.strip() == ("error: /: no spec.yaml: not a results "
                                              "directory")
    assert main(["records", str(tmp_path)]) == 1


# ---- temp files of other runs ---------------------------------------------------------------
def test_prepare_removes_only_temp_files_whose_writer_is_gone(ran) -> None:
    spec_path, results = ran
    live = results / f"{temp_prefix('spec.yaml')}abcd.tmp"  # this process: alive
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True).stdout.strip()
    dead = results / temp_prefix("spec.yaml").replace(f"p{os.getpid()}.", f"p{dead_pid}.")
    dead = dead.with_name(dead.name + "efgh.tmp")
    old = results / "cells" / ".x.json.unknown.tmp"
    for path in (live, dead, old):
        path.write_text("partial")
    os.utime(old, (1, 1))  # older than any claim could be silent
    assert main(["run", str(spec_path), "--no-report"]) == 0
    assert live.exists() and not dead.exists() and not old.exists()


def test_two_runs_started_at_once_both_finish(tmp_path, write_spec) -> None:
    path = spec(write_spec)
    for _ in range(3):
        shutil.rmtree(tmp_path / "results", ignore_errors=True)
        procs = [subprocess.Popen([sys.executable, "-m", "harness.cli", "run", str(path),
                                   "--no-report"], cwd=tmp_path,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        outs = [p.communicate(timeout=300) for p in procs]
        for proc, (_, err) in zip(procs, outs, strict=True):
            assert "Traceback" not in err, err
            assert proc.returncode == 0, err


# ---- text that is not meant as markup --------------------------------------------------------
def test_formula_and_html_labels_are_neutralised_in_reports(write_spec, capsys) -> None:
    data = small_spec(seeds=[0], sizes=[2], runs=2,
                      task={"name": "logistic", "params": {"epochs": 20}})
    data["methods"] = [{"name": "baseline", "label": '=HYPERLINK("http://x")'},
                       {"name": "imm_sampled", "label": "<b>imm</b>|x", "lambda": 1.0},
                       {"name": "noising", "label": "-1+2", "lambda": 0.5}]
    path = write_spec(data)
    assert main(["run", str(path)]) == 0
    results = Path("results/tiny")
    csv_text = (results / "report.csv").read_text()
    assert "'=HYPERLINK" in csv_text and "'-1+2" in csv_text
    import csv

    rows = list(csv.DictReader(csv_text.splitlines()))
    assert all(not r["method"].startswith(("=", "+", "-", "@")) for r in rows)
    assert all(float(r["median"]) == float(r["median"]) for r in rows)  # numbers as numbers
    md = (results / "report.md").read_text()
    assert "<b>" not in md and "&lt;b&gt;imm&lt;/b&gt;\\|x" in md
    capsys.readouterr()
    assert main(["leaderboard", str(results), "--reports", "--machine",
                 "`<script>alert(1)</script>"]) == 0
    page = capsys.readouterr().out
    [command] = [x for x in page.splitlines() if "<script>" in x]  # only in a code span
    assert command.startswith("Generated from result folders by ``harness leaderboard")
    assert "--machine '`<script>alert(1)</script>'``." in command  # the span holds it all
    assert "<b>" not in page and "`&lt;script&gt;" in page
    assert main(["leaderboard", str(results), "--format", "csv"]) == 0
    board = capsys.readouterr().out
    assert "'=HYPERLINK" in board and "\n=HYPERLINK" not in board


def test_a_label_with_a_newline_is_refused_at_validate(write_spec, capsys) -> None:
    data = small_spec()
    data["methods"][0]["label"] = "two\nlines"
    assert main(["validate", str(write_spec(data))]) == 1
    err = capsys.readouterr().err.strip()
    assert err.endswith("methods[0].label: 'two\\nlines' holds a control character ('\\n'); "
                        "a label is one line of printable text")
