"""Nothing destroyed (issue 11, point 4): harness marks the folders it makes, writes only
into folders it made (or that hold nothing else), and --fresh removes only what it wrote."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import small_spec

from harness.cli import main
from harness.runner.ownership import MARKER


def tiny(write_spec, **changes) -> Path:
    return write_spec(small_spec(seeds=[0], sizes=[2], **changes))


def test_fresh_refuses_a_folder_harness_did_not_make(write_spec, tmp_path, capsys) -> None:
    mine = tmp_path / "mine" / "important"
    mine.mkdir(parents=True)
    (mine / "thesis.tex").write_text("years of work")
    spec = tiny(write_spec)
    rc = main(["run", str(spec), "--set", f"output_dir={tmp_path / 'mine'}", "--set",
               "name=important", "--fresh", "--no-report"])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and "\n" not in err and "refusing to write into a folder" in err
    assert (mine / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["important"]


def test_an_output_dir_holding_other_files_is_refused(write_spec, tmp_path, capsys) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    spec = tiny(write_spec, output_dir=str(home), tracking={"enabled": True})
    assert main(["run", str(spec), "--no-report"]) == 1
    assert "refusing to write into" in capsys.readouterr().err
    assert sorted(p.name for p in home.iterdir()) == ["notes.txt"]  # no mlflow.db, no tiny/


@pytest.mark.skipif(Path("/mlflow.db").exists() or Path("/tiny").exists(),
                    reason="the root folder already holds what this test checks for")
def test_output_dir_root_is_refused(write_spec, capsys) -> None:
    spec = tiny(write_spec, output_dir="/", tracking={"enabled": True})
    assert main(["run", str(spec), "--no-report"]) == 1
    assert "refusing to write into" in capsys.readouterr().err
    assert not Path("/mlflow.db").exists() and not Path("/tiny").exists()
    assert not Path("/" + MARKER).exists()


def test_fresh_removes_only_what_harness_wrote(write_spec, tmp_path, capsys) -> None:
    spec = tiny(write_spec)
    assert main(["run", str(spec)]) == 0
    root = tmp_path / "results" / "tiny"
    assert (root / MARKER).is_file() and (tmp_path / "results" / MARKER).is_file()
    (root / "my-notes.md").write_text("keep me")
    (root / "cells" / "README").write_text("keep me too")
    capsys.readouterr()
    assert main(["run", str(spec), "--fresh", "--no-report"]) == 0
    captured = capsys.readouterr()
    assert "(0 resumed)" in captured.out
    assert "kept 2 file(s) harness did not make" in captured.err
    assert (root / "my-notes.md").read_text() == "keep me"
    assert (root / "cells" / "README").read_text() == "keep me too"
    assert not (root / "report.md").exists()  # harness's own files went (and --no-report)
    assert len(list((root / "cells").glob("*.json"))) == 3


def test_an_empty_folder_and_a_results_folder_from_before_markers_are_adopted(
        write_spec, tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    spec = tiny(write_spec, output_dir=str(tmp_path / "empty"))
    assert main(["run", str(spec), "--no-report"]) == 0
    assert (tmp_path / "empty" / MARKER).is_file()
    # A folder as earlier versions left it: spec.yaml, cells/, report.md, no marker.
    old = tmp_path / "old" / "tiny"
    (old / "cells" / "stale").mkdir(parents=True)
    (old / "spec.yaml").write_text("name: tiny\n")
    (old / "report.md").write_text("# old\n")
    (tmp_path / "old" / "mlflow.db").write_bytes(b"")
    spec = tiny(write_spec, output_dir=str(tmp_path / "old"), tracking={"enabled": False})
    assert main(["run", str(spec), "--no-report"]) == 0
    assert (old / MARKER).is_file() and (tmp_path / "old" / MARKER).is_file()
