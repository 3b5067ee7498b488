"""Checks against reported numbers: bands, tolerances, orderings, missing cells, exit codes,
and the Table 4 file transcribed from the paper."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_report import write_results

from harness.report.check import load_reported, run_checks, summarize
from harness.report.command import check_command
from harness.report.load import ReportError, load_results

REPO = Path(__file__).resolve().parents[1]

# Exact, easy percentiles: each cell's 101 runs are center + linspace(-0.05, 0.05), so the
# median is the center and p10/p90 are center -/+ 0.04.
CENTERS = {("baseline", 5): 0.80, ("noising", 5): 0.82, ("imm", 5): 0.85,
           ("baseline", 10): 0.90, ("noising", 10): 0.86, ("imm", 10): 0.92}


@pytest.fixture
def results(tmp_path: Path) -> Path:
    spread = [(i - 50) / 1000 for i in range(101)]
    cells = [{"label": lb, "size": n, "seed": 0, "values": [c + d for d in spread]}
             for (lb, n), c in CENTERS.items()]
    return write_results(tmp_path / "results", cells, runs=101)


def reported(tmp_path: Path, rules: list[dict[str, Any]], **top: Any) -> Path:
    data = {"source": "test", "task": "logistic", "metric": "accuracy", "scale": 100,
            "rules": rules, **top}
    path = tmp_path / "reported.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def check(results: Path, path: Path):
    return run_checks(load_results(results), load_reported(path))


def test_pooled_fixture_has_the_intended_percentiles(results: Path):
    cell = load_results(results).pooled("accuracy")[("imm", 10)]
    assert (cell.median, cell.p10, cell.p90) == pytest.approx((0.92, 0.88, 0.96))


def test_band_pass_reports_distance_to_nearer_edge(results: Path, tmp_path: Path):
    path = reported(tmp_path, [{"rule": "band", "label": "imm", "size": 10, "value": 91.0,
                                "plus": 2.0, "minus": 5.0}])
    [row] = check(results, path)  # band [86, 93], median 92: 1.0 below the upper edge
    assert row.passed and row.margin == pytest.approx(1.0)
    assert row.closeness == "inside by 1.00; +1.00 from reported" and row.verdict == "PASS"


def test_band_fail_reports_how_far_it_misses(results: Path, tmp_path: Path):
    path = reported(tmp_path, [{"rule": "band", "label": "baseline", "size": 5, "value": 73.14,
                                "plus": 5.0, "minus": 14.53}])
    [row] = check(results, path)  # band [58.61, 78.14], median 80: misses by 1.86 above
    assert not row.passed and row.margin == pytest.approx(-1.86)
    assert row.closeness == "misses by 1.86 (above); +6.86 from reported"
    assert row.verdict == "FAIL"


def test_statistic_and_tolerance(results: Path, tmp_path: Path):
    rules = [{"rule": "tolerance", "label": "imm", "size": 5, "value": 81.5, "tol": 0.6,
              "stat": "p10"},
             {"rule": "tolerance", "label": "imm", "size": 5, "value": 85.5, "tol": 0.4}]
    first, second = check(results, reported(tmp_path, rules))
    assert first.passed and first.margin == pytest.approx(0.1)  # p10 = 81
    assert not second.passed and second.margin == pytest.approx(-0.1)


def test_ordering_is_direction_aware(results: Path, tmp_path: Path):
    rules = [{"rule": "ordering", "better": "baseline", "worse": "noising", "sizes": [5, 10]}]
    at5, at10 = check(results, reported(tmp_path, rules))
    assert not at5.passed and at5.closeness == "gap -2.00" and at5.margin == pytest.approx(-2.0)
    assert at10.passed and at10.margin == pytest.approx(4.0)
    # log_loss = 1 - accuracy is lower-is-better: the same ordering holds the same way
    rows = check(results, reported(tmp_path, rules, metric="log_loss"))
    assert [r.passed for r in rows] == [False, True] and "<=" in rows[0].expected
    with_margin = [{**rules[0], "sizes": [10], "margin": 5.0}]
    [row] = check(results, reported(tmp_path, with_margin))
    assert not row.passed and row.margin == pytest.approx(-1.0)


def test_missing_cell_fails_with_no_results(results: Path, tmp_path: Path):
    rules = [{"rule": "band", "label": "imm", "size": 50, "value": 97.0, "plus": 2, "minus": 2},
             {"rule": "ordering", "better": "imm", "worse": "ghost", "sizes": [5]}]
    band, order = check(results, reported(tmp_path, rules))
    assert not band.passed and band.closeness == "no results"
    assert not order.passed and order.closeness == "ghost: no results"


def test_non_required_rules_never_fail_the_check(results: Path, tmp_path: Path, capsys):
    rules = [{"rule": "band", "label": "imm", "size": 10, "value": 92, "plus": 1, "minus": 1},
             {"rule": "band", "label": "noising", "size": 10, "value": 50, "plus": 1, "minus": 1,
              "required": False}]
    path = reported(tmp_path, rules)
    rows = check(results, path)
    assert rows[1].verdict == "FAIL (info)"
    assert summarize(rows) == "1 passed, 0 failed (1 informational failed, not counted)"
    assert check_command(argparse.Namespace(source=str(results), against=str(path))) == 0
    out = capsys.readouterr().out
    assert "FAIL (info)" in out and "1 passed, 0 failed" in out


def test_check_command_exit_code_and_table(results: Path, tmp_path: Path, capsys):
    rules = [{"rule": "band", "label": "imm", "size": 10, "value": 92, "plus": 1, "minus": 1},
             {"rule": "ordering", "better": "baseline", "worse": "noising", "sizes": [5, 10]}]
    path = reported(tmp_path, rules)
    assert check_command(argparse.Namespace(source=str(results), against=str(path))) == 1
    out = capsys.readouterr().out
    assert "2 passed, 1 failed" in out and "92.00 [91.00, 93.00]" in out and "gap -2.00" in out


def test_bad_reported_file_is_one_line(results: Path, tmp_path: Path, capsys):
    path = reported(tmp_path, [{"rule": "band", "label": "imm", "size": 10, "value": 92}])
    with pytest.raises(ReportError, match=r"rules\.0\.band\.plus: Field required"):
        load_reported(path)
    wrong_task = reported(tmp_path, [{"rule": "tolerance", "label": "imm", "size": 5,
                                      "value": 1, "tol": 1}], task="lm")
    assert check_command(argparse.Namespace(source=str(results), against=str(wrong_task))) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "task 'lm'" in err


def test_table4_file_matches_the_paper():
    reported = load_reported(REPO / "reported" / "logistic_table4.yaml")
    assert (reported.task, reported.metric, reported.scale) == ("logistic", "accuracy", 100)
    bands = {(r.label, r.size): (r.value, r.plus, r.minus, r.required)
             for r in reported.rules if r.rule == "band"}
    assert len(bands) == 21
    paper = _paper_table4()
    assert {k: v[:3] for k, v in bands.items()} == paper
    assert all(req == (label != "noising") for (label, _), (*_, req) in bands.items())
    orderings = {(r.better, r.worse): r.sizes for r in reported.rules if r.rule == "ordering"}
    assert orderings == {("baseline", "noising"): [15, 20, 30, 40, 50],
                         ("imm", "noising"): [5, 10, 15, 20, 30, 40, 50]}


def _paper_table4() -> dict[tuple[str, int], tuple[float, float, float]]:
    """Parse Table 4 straight from the paper text when it is available, else the brief."""
    import re

    text_path = Path("/work/shared/paper/imm-paper.txt")
    if not text_path.is_file():
        pytest.skip("paper text not available")
    text = text_path.read_text(encoding="utf-8")
    block = text[text.index("Table 4:"):][:1500]
    table = {}
    for n, *cols in re.findall(r"N=(\d+)" + r" ([\d.]+) \+([\d.]+)/-([\d.]+)" * 3, block):
        for i, label in enumerate(("baseline", "noising", "imm")):
            value, plus, minus = (float(x) for x in cols[3 * i: 3 * i + 3])
            table[(label, int(n))] = (value, plus, minus)
    return table
