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


def test_missing_size_is_not_run_and_an_unknown_label_fails(results: Path, tmp_path: Path):
    rules = [{"rule": "band", "label": "imm", "size": 50, "value": 97.0, "plus": 2, "minus": 2},
             {"rule": "ordering", "better": "imm", "worse": "ghost", "sizes": [5]}]
    band, order = check(results, reported(tmp_path, rules))
    assert band.not_run and band.verdict == "not run" and not band.counts_as_failure
    assert band.closeness == "not run (the results have no such size)"
    assert not order.passed and order.closeness == "no method labelled 'ghost' in the results"
    assert order.verdict == "FAIL" and order.counts_as_failure


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
    assert len(bands) == 28
    paper = _paper_table4()
    # the paper's noising column twice: for noising at 1 - r (required) and at r (info)
    variant = "noising_one_minus_ratio"
    paper.update({(variant, n): v for (label, n), v in paper.items() if label == "noising"})
    assert {k: v[:3] for k, v in bands.items()} == paper
    assert all(req == (label != "noising") for (label, _), (*_, req) in bands.items())
    orderings = {(r.better, r.worse): r.sizes for r in reported.rules if r.rule == "ordering"}
    assert orderings == {("baseline", "noising"): [15, 20, 30, 40, 50],
                         ("baseline", variant): [15, 20, 30, 40, 50],
                         ("imm", "noising"): [5, 10, 15, 20, 30, 40, 50],
                         ("imm", variant): [5, 10, 15, 20, 30, 40, 50]}


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


# ---- per-rule metrics, sizes not run, one-sided bands ----------------------------------------
def test_rule_metric_only_if_run_and_one_sided_band(results: Path, tmp_path: Path, capsys):
    rules = [
        # log_loss = 1 - accuracy (lower is better): imm 0.08 vs noising 0.14 at size 10
        {"rule": "ordering", "metric": "log_loss", "better": "imm", "worse": "noising",
         "sizes": [10, 50], "only_if_run": True},
        # a constant as a one-sided band: ours (percent) >= 85
        {"rule": "band", "label": "imm", "size": 10, "value": 85.0, "minus": 0,
         "plus": float("inf")},
        {"rule": "band", "label": "ghost", "size": 50, "value": 1, "plus": 1, "minus": 1,
         "only_if_run": True},
    ]
    path = reported(tmp_path, rules)
    assert ".inf" in path.read_text()  # YAML's infinity
    order10, order50, band, ghost = check(results, path)
    assert order10.passed and order10.metric == "log_loss" and "<=" in order10.expected
    assert order10.margin == pytest.approx(0.06 * 100)
    assert order50.not_run and ghost.not_run and order50.other_scale
    assert not order50.counts_as_failure
    assert order50.verdict == "not run" and "no such size" in ghost.closeness
    assert band.passed and band.margin == pytest.approx(7.0) and band.metric == "accuracy"
    assert summarize([order10, order50, band, ghost]) == (
        "2 passed, 0 failed (2 not run, 2 of another scale: not counted)")
    assert check_command(argparse.Namespace(source=str(results), against=str(path))) == 0
    out = capsys.readouterr().out
    assert "log_loss" in out and "ghost" not in out  # a metric column; not-run rows hidden
    # Without only_if_run a size the results lack is shown as not run; it fails only with
    # --require-all, which never fails the only_if_run sizes of another scale.
    rules[2]["only_if_run"] = False
    path = reported(tmp_path, rules)
    last = check(results, path)[-1]
    assert last.not_run and not last.other_scale and not last.counts_as_failure
    rows = run_checks(load_results(results), load_reported(path), require_all=True)
    assert [r.verdict for r in rows] == ["PASS", "not run", "PASS", "FAIL (not run)"]
    assert summarize(rows) == ("2 passed, 1 failed (2 not run, 1 of another scale: 1 counted "
                               "as failed (--require-all))")


# ---- the PTB Tables 1 and 5 -------------------------------------------------------------------
PTB_METRICS = ("test_ppl", "valid_ppl", "test_ppl_stream", "induced_ppl_train",
               "induced_ppl_valid", "induced_ppl_test")


def ptb_results(root: Path, size: int, values: dict[str, dict[str, float]]) -> Path:
    """A ptb_lstm results directory with one single-run cell per label at ``size``."""
    import json

    labels = ("baseline", "noising", "imm")
    results = root / "ptb"
    (results / "cells").mkdir(parents=True)
    spec = {"name": "ptb", "task": {"name": "ptb_lstm", "params": {}}, "metric": "test_ppl",
            "methods": [{"name": lb, "label": lb} for lb in labels], "sizes": [size],
            "seeds": [0], "runs": 1}
    (results / "spec.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    grid = {"spec": "ptb", "cells": list(labels), "data": {}}
    (results / "grid.json").write_text(json.dumps(grid), encoding="utf-8")
    for label in labels:
        record = {"schema": 1, "cell_id": label, "spec": "ptb", "task": "ptb_lstm",
                  "method": label, "label": label, "size": size, "seed": 0, "runs": 1,
                  "status": "ok", "reason": None, "config": {},
                  "metrics": {m: [values[label][m]] for m in values[label]}}
        (results / "cells" / f"{label}.json").write_text(json.dumps(record), encoding="utf-8")
    return results


def _ptb_values(imm_test: float) -> dict[str, dict[str, float]]:
    base = {"test_ppl": 140.0, "valid_ppl": 150.0, "induced_ppl_train": 300.0,
            "induced_ppl_valid": 400.0, "induced_ppl_test": 380.0}
    noising = {k: v - 5 for k, v in base.items()}
    imm = {k: v - 8 for k, v in base.items()}
    imm["test_ppl"] = imm_test
    return {"baseline": base, "noising": noising, "imm": imm}


def test_ptb_table_files_parse_and_check_cpu_scale_results(tmp_path: Path, capsys):
    table1 = load_reported(REPO / "reported" / "ptb_table1.yaml")
    table5 = load_reported(REPO / "reported" / "ptb_table5.yaml")
    metrics = {r.metric or f.metric for f in (table1, table5) for r in f.rules}
    assert (table1.task, table5.task) == ("ptb_lstm", "ptb_lstm")
    assert metrics <= set(PTB_METRICS) and all(r.only_if_run for r in table1.rules + table5.rules)
    paper1, paper5 = _paper_ptb_tables()
    ours1 = {(r.metric, r.label): r.value for r in table1.rules if r.rule == "tolerance"}
    assert ours1 == paper1
    assert all(not r.required for r in table1.rules if r.rule == "tolerance")
    ours5 = {(r.metric, r.label): r.value for r in table5.rules if r.rule == "tolerance"}
    assert ours5 == {k: v for k, v in paper5.items() if k[1] != "kn"}
    kn_full = {r.metric: r.value for r in table5.rules if r.rule == "band" and r.size == 929589}
    assert kn_full == pytest.approx({m: v for (m, lb), v in paper5.items() if lb == "kn"},
                                    abs=0.3)  # ours and lmplz's vs the paper's KN column
    # CPU-scale results (size 200000): the orderings and KN bounds at 200000 are checked,
    # everything at other sizes is "not run".
    good = ptb_results(tmp_path / "good", 200000, _ptb_values(imm_test=131.0))
    for path, expected_rows in (("ptb_table1.yaml", 6), ("ptb_table5.yaml", 6)):
        args = argparse.Namespace(source=str(good), against=str(REPO / "reported" / path))
        assert check_command(args) == 0, capsys.readouterr().out
        rows = run_checks(load_results(good), load_reported(REPO / "reported" / path))
        assert sum(not r.not_run for r in rows) == expected_rows
        assert all(r.passed for r in rows if not r.not_run)
    # IMM worse than noising in test perplexity: Table 1's check fails.
    bad = ptb_results(tmp_path / "bad", 200000, _ptb_values(imm_test=136.0))
    rows = run_checks(load_results(bad), table1)
    [failed_row] = [r for r in rows if not r.passed and not r.not_run]
    assert (failed_row.labels, failed_row.metric) == ("imm vs noising", "test_ppl")
    # The baseline's induced bigram better than KN's: Table 5's bound fails.
    values = _ptb_values(imm_test=131.0)
    values["baseline"]["induced_ppl_test"] = 250.0
    values["noising"]["induced_ppl_test"] = values["imm"]["induced_ppl_test"] = 240.0
    rows = run_checks(load_results(ptb_results(tmp_path / "kn", 200000, values)), table5)
    assert [(r.rule, r.metric) for r in rows if not r.passed and not r.not_run] == [
        ("band", "induced_ppl_test")]


def test_ptb_table5_kn_constants_are_the_kn_bigram_perplexities():
    """The KN bounds of ptb_table5.yaml are harness.ngram's KN bigram of the first ``size``
    training tokens, scored on the pairs induced_ppl_* counts (train: the first 100,000
    tokens of the prefix, the CPU specs' induced_eval_tokens; all of it at 929589)."""
    data = REPO.parents[0] / "shared" / "data"
    if not (data / "ptb" / "ptb.train.txt").is_file():
        pytest.skip("PTB data not available")
    from harness.ngram.kneser_ney import KneserNeyBigram
    from harness.tasks.ptb_lstm.corpus import load_corpus

    corpus = load_corpus(str(data))
    table5 = load_reported(REPO / "reported" / "ptb_table5.yaml")
    bounds = {(r.metric, r.size): r.value for r in table5.rules if r.rule == "band"}
    assert len(bounds) == 15
    for size in sorted({s for _, s in bounds}):
        kn = KneserNeyBigram.from_stream(corpus.train[:size], len(corpus.vocab))
        cap = None if size == 929589 else 100_000
        streams = {"train": corpus.train[:size][:cap], "valid": corpus.valid,
                   "test": corpus.test}
        for split, stream in streams.items():
            assert bounds[(f"induced_ppl_{split}", size)] == pytest.approx(
                kn.perplexity(stream), abs=0.006), (split, size)


def _paper_ptb_tables() -> tuple[dict, dict]:
    """Tables 1 and 5 parsed from the paper text: {(metric, label): value}."""
    import re

    text_path = Path("/work/shared/paper/imm-paper.txt")
    if not text_path.is_file():
        pytest.skip("paper text not available")
    text = text_path.read_text(encoding="utf-8")
    block = text[text.index("Table 1: Perplexity"):][:800]
    table1 = {}
    for row, label in (("None (only regular dropout)", "baseline"),
                       ("KN Noising (reproducible)", "noising"), ("IMM with KN Bigram", "imm")):
        valid, test = re.search(re.escape(row) + r" ([\d.]+) ([\d.]+)", block).groups()
        table1[("valid_ppl", label)] = float(valid)
        table1[("test_ppl_stream", label)] = float(test)
    block = text[text.index("Table 5: Restricted vs. Full"):][:1500]
    table5 = {}
    for row, split in (("Train", "train"), ("Validation", "valid"), ("Test", "test")):
        found = re.search(rf"\n{row} ([\d.]+) → ([\d.]+) ([\d.]+)", block).groups()
        for label, value in zip(("baseline", "imm", "kn"), found, strict=True):
            table5[(f"induced_ppl_{split}", label)] = float(value)
    return table1, table5
