"""`harness leaderboard`: a board over several result sets with known win rates, ranks,
differences and gains; methods missing from a source shown as missing; md, csv, json and
html; n = 1 without an interval; pairing over seeds for tasks that do not pair
replicates; the committed smoke records of the logistic and grid RL tasks."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from test_report import PageParser, write_results

from harness.cli import main
from harness.report.leaderboard import build_board, to_markdown
from harness.report.load import load_results

SMOKE = Path(__file__).resolve().parent / "data" / "smoke"


def constant_cells(values: dict[tuple[str, int], float], runs: int = 9, seeds=(0,),
                   spread: float = 0.01) -> list[dict]:
    """Cells whose replicates are value + the same symmetric offsets (median = value), so
    a paired difference is exactly the difference of the values."""
    offsets = np.linspace(-spread, spread, runs)
    return [{"label": lb, "size": n, "seed": s, "values": (v + offsets).tolist()}
            for (lb, n), v in values.items() for s in seeds]


@pytest.fixture
def two_sources(tmp_path: Path) -> tuple[Path, Path]:
    a = write_results(tmp_path / "out", constant_cells({
        ("baseline", 5): 0.70, ("noising", 5): 0.72, ("imm", 5): 0.80,
        ("baseline", 10): 0.85, ("noising", 10): 0.80, ("imm", 10): 0.85,
    }), name="toy_a", sizes=(5, 10), runs=9)
    # toy_b: no noising; a second size that was never run
    b = write_results(tmp_path / "out", constant_cells({
        ("baseline", 5): 0.60, ("imm", 5): 0.65,
    }), name="toy_b", sizes=(5, 20), runs=9, labels=("baseline", "imm"))
    return a, b


def test_a_board_over_two_sources_with_known_answers(two_sources):
    board = build_board([load_results(p) for p in two_sources])
    assert [s.name for s in board.sources] == ["toy_a", "toy_b"]
    assert board.columns == [(0, 5), (0, 10), (1, 5), (1, 20)]
    # imm: beats baseline at toy_a 5 and toy_b 5, ties at toy_a 10 -> 2.5 of 3;
    # beats noising at both toy_a columns -> 1; mean (2.5/3 + 1) / 2
    assert board.pairwise["imm"]["baseline"] == (pytest.approx(2.5 / 3), 3)
    assert board.win_rate["imm"] == pytest.approx((2.5 / 3 + 1) / 2)
    # noising: beats baseline at 5, loses at 10 -> 0.5; loses to imm twice -> 0
    assert board.win_rate["noising"] == pytest.approx(0.25)
    assert board.labels == ["imm", "baseline", "noising"]  # ordered by mean win rate
    # ranks: imm 1, 1.5 (tie with the baseline), 1; noising 2, 3
    assert board.mean_rank["imm"] == pytest.approx((1 + 1.5 + 1) / 3)
    assert board.mean_rank["noising"] == pytest.approx(2.5)
    # missing, never dropped: noising is not in toy_b, nothing ran at toy_b size 20
    assert board.entries[("noising", 2)].status == "absent"
    assert board.entries[("imm", 3)].status == "missing"
    assert board.cells("noising") == 2 and board.cells("imm") == 3
    # the difference to the baseline: exact, paired over the 9 replicates
    diff = board.entries[("imm", 0)].diff
    assert diff.estimate == pytest.approx(0.10) and diff.low == pytest.approx(0.10)
    assert diff.n == 9 and diff.unit == "replicates" and diff.excludes_zero
    assert board.entries[("imm", 1)].diff.side(True) == "n.s."  # a tie
    assert board.versus("imm") == {"better": 2, "worse": 0, "n.s.": 1}
    assert board.versus("noising") == {"better": 1, "worse": 1, "n.s.": 0}
    md = to_markdown(board)
    assert "| noising |" not in md.split("### toy_b")[1]  # not in toy_b's spec: a note
    assert "Not in this spec (n/a): noising." in md
    assert "| imm | **65.00** | — |" in md  # and nothing ran at size 20
    assert "+10.00 [+10.00, +10.00]*" in md and "9 (seed, replicate) pairs" in md


def test_data_gain_on_the_board(tmp_path):
    sizes = (2, 4, 8, 16)
    values = {("baseline", n): 0.1 * math.log2(n) for n in sizes}
    values |= {("imm", n): 0.1 * math.log2(1.3 * n) for n in sizes}
    rs = load_results(write_results(tmp_path / "out", constant_cells(values), name="curve",
                                    sizes=sizes, runs=9, labels=("baseline", "imm")))
    board = build_board([rs])
    gain = board.gains[(0, "imm")]
    assert gain.mean == pytest.approx(30.0) and len(gain.defined) == 3
    assert "+30.0% (3 of 4)" in to_markdown(board)


def test_one_replicate_one_seed_says_no_interval(tmp_path):
    cells = [{"label": lb, "size": 5, "seed": 0, "values": [v]}
             for lb, v in (("baseline", 0.7), ("imm", 0.9))]
    rs = load_results(write_results(tmp_path / "out", cells, sizes=(5,), runs=1,
                                    labels=("baseline", "imm")))
    md = to_markdown(build_board([rs]))
    assert "+20.00 (n = 1, no interval)" in md and "n = 1: no interval" in md


def test_a_task_without_paired_replicates_is_compared_over_seeds(tmp_path, monkeypatch):
    import harness.report.stats as stats

    monkeypatch.setattr(stats, "task_pairs_replicates", lambda task: False)
    cells = constant_cells({("baseline", 5): 0.7, ("imm", 5): 0.8}, seeds=(0, 1, 2))
    rs = load_results(write_results(tmp_path / "out", cells, sizes=(5,), runs=9,
                                    labels=("baseline", "imm")))
    board = build_board([rs])
    diff = board.entries[("imm", 0)].diff
    assert (diff.n, diff.unit) == (3, "seeds") and diff.estimate == pytest.approx(0.1)
    assert "paired bootstrap over seeds" in to_markdown(board)


def test_every_format_and_the_reference_option(two_sources, tmp_path, capsys):
    a, b = (str(p) for p in two_sources)
    assert main(["leaderboard", a, b]) == 0
    assert "## Leaderboard" in capsys.readouterr().out
    assert main(["leaderboard", a, b, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 4 * 3  # 4 columns x 3 methods
    imm5 = next(r for r in rows if r["source"] == "toy_a" and r["size"] == "5"
                and r["method"] == "imm")
    assert float(imm5["diff"]) == pytest.approx(0.1) and imm5["significant"] == "1"
    assert main(["leaderboard", a, b, "--format", "json", "--reference", "noising"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["reference"] == "noising"
    imm = next(m for m in data["methods"] if m["label"] == "imm")
    assert imm["win_rates"]["noising"] == {"rate": 1.0, "shared_columns": 2}
    cell = next(c for c in data["cells"] if c["method"] == "imm" and c["size"] == 10
                and c["source"] == "toy_a")
    assert cell["difference"]["estimate"] == pytest.approx(0.05)
    assert cell["difference"]["method"] == "paired bootstrap over 9 replicates, 95%"
    out = tmp_path / "board.html"
    assert main(["leaderboard", a, b, "--format", "html", "-o", str(out)]) == 0
    parser = PageParser()
    parser.feed(out.read_text())
    assert parser.stack == [] and parser.external == [] and len(parser.images) == 2
    assert main(["leaderboard", a, "--reference", "ghost"]) == 0
    assert "no method labelled 'ghost'" in capsys.readouterr().err
    assert main(["leaderboard", a, "--format", "csv", "--reports"]) == 1
    assert "--reports writes a Markdown page" in capsys.readouterr().err


def test_the_smoke_records_of_logistic_and_grid_rl(tmp_path, capsys):
    sources = [str(SMOKE / "smoke_logistic"), str(SMOKE / "smoke_grid_rl")]
    for fmt in ("md", "csv", "json"):
        assert main(["leaderboard", *sources, "--format", fmt]) == 0, fmt
        text = capsys.readouterr().out
        assert "imm" in text
    data = json.loads(text)
    assert {s["task"] for s in data["sources"]} == {"logistic", "grid_rl"}
    assert all(s["paired_replicates"] for s in data["sources"])
    methods = {m["label"]: m for m in data["methods"]}
    assert set(methods) >= {"baseline", "imm", "noising", "interpolation", "reverse_kd",
                            "imm_serialized"}
    assert methods["reverse_kd"]["cells"] == 2  # grid RL only: n/a on the logistic columns
    diffs = [c["difference"] for c in data["cells"] if c["difference"]]
    assert diffs and all(d["low"] <= d["estimate"] <= d["high"] for d in diffs)
    out = tmp_path / "smoke.html"
    assert main(["leaderboard", *sources, "--format", "html", "-o", str(out)]) == 0
    assert out.read_text().count("<table") >= 6
