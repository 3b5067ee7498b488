"""The results page is generated, not typed: the generator reproduces the committed page
tests/data/smoke/results.md from the committed smoke records, byte for byte. After a
deliberate change to the page's format, regenerate it with

    cd tests/data/smoke && harness leaderboard smoke_logistic smoke_grid_rl --format md \\
        --reports --machine 'the 2-core CPU development VM' --append transcribed.md \\
        -o results.md
"""

from __future__ import annotations

import shutil
from pathlib import Path

from harness.cli import main

SMOKE = Path(__file__).resolve().parent / "data" / "smoke"


def test_the_generator_reproduces_the_committed_page(tmp_path, monkeypatch):
    for name in ("smoke_logistic", "smoke_grid_rl", "transcribed.md"):
        source = SMOKE / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    assert main(["leaderboard", "smoke_logistic", "smoke_grid_rl", "--format", "md",
                 "--reports", "--machine", "the 2-core CPU development VM", "--append",
                 "transcribed.md", "-o", "results.md"]) == 0
    page = (tmp_path / "results.md").read_text(encoding="utf-8")
    expected = (SMOKE / "results.md").read_text(encoding="utf-8")
    assert page == expected
    # Every table says where its records come from.
    assert page.count("commit 8d3115663cb9") >= 4 and "cells finished 2026-12-01" in page
    assert "copied verbatim from transcribed.md: written by hand" in page


def test_the_page_changes_when_the_records_do(tmp_path, monkeypatch):
    import json

    shutil.copytree(SMOKE / "smoke_logistic", tmp_path / "smoke_logistic")
    monkeypatch.chdir(tmp_path)
    assert main(["leaderboard", "smoke_logistic", "--format", "md", "--reports",
                 "-o", "a.md"]) == 0
    for path in (tmp_path / "smoke_logistic" / "cells").glob("*.json"):
        record = json.loads(path.read_text())
        record["metrics"]["accuracy"] = [0.5] * record["runs"]
        path.write_text(json.dumps(record))
    assert main(["leaderboard", "smoke_logistic", "--format", "md", "--reports",
                 "-o", "b.md"]) == 0
    assert (tmp_path / "a.md").read_text() != (tmp_path / "b.md").read_text()
