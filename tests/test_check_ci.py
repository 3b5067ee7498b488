"""`harness check` for CI: statistical orderings (confidence), data_gain rules, rows not
run and --require-all, text that fits 100 columns, JSON and JUnit output, and the
regression check against an earlier run (--against-results)."""

from __future__ import annotations

import json
import math
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from test_report import write_results

from harness.cli import main
from harness.report.check import load_reported, run_checks
from harness.report.load import load_results

REPO = Path(__file__).resolve().parents[1]


def reported(tmp_path: Path, rules: list[dict[str, Any]], name: str = "reported.yaml",
             **top: Any) -> Path:
    data = {"source": "test", "task": "logistic", "metric": "accuracy", "rules": rules, **top}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture
def paired(tmp_path: Path) -> Path:
    """Replicate i is paired: imm = baseline + 0.02 (+-0.005) on every replicate, noising
    = baseline +-0.05 (no real difference, a wide spread), over a spread of baselines."""
    rng = np.random.default_rng(1)
    base = rng.uniform(0.6, 0.9, 200)
    wiggle = np.where(np.arange(200) % 2 == 0, 1.0, -1.0)
    values = {"baseline": base, "imm": base + 0.02 + 0.005 * wiggle,
              "noising": base + 0.05 * wiggle * rng.permutation(wiggle)}
    cells = [{"label": lb, "size": 10, "seed": 0, "values": v.tolist()}
             for lb, v in values.items()]
    return write_results(tmp_path / "results", cells, sizes=(10,), runs=200)


def test_an_ordering_with_confidence_needs_its_interval_above_zero(paired, tmp_path):
    rules = [{"rule": "ordering", "better": "imm", "worse": "baseline", "sizes": [10],
              "confidence": 0.95, "stat": "mean"},
             {"rule": "ordering", "better": "noising", "worse": "baseline", "sizes": [10],
              "confidence": 0.95, "stat": "mean"},
             {"rule": "ordering", "better": "imm", "worse": "baseline", "sizes": [10],
              "confidence": 0.95, "stat": "mean", "margin": 0.03}]
    rs = load_results(paired)
    imm, noising, too_much = run_checks(rs, load_reported(reported(tmp_path, rules)))
    assert imm.passed and imm.margin == pytest.approx(0.02, abs=0.001)
    assert "paired bootstrap over 200 replicates, 95%" in imm.closeness
    assert imm.details["interval"]["n"] == 200 and imm.details["interval"]["unit"] == "replicates"
    assert not noising.passed and noising.closeness.endswith("not significant")
    # The plain (median) ordering of the same noise can pass or fail by chance; the interval
    # says there is no difference to claim.
    assert not too_much.passed and too_much.margin < 0  # 0.02 does not clear a 0.03 margin


def test_one_replicate_cannot_show_a_difference(tmp_path):
    cells = [{"label": lb, "size": 5, "seed": 0, "values": [v]}
             for lb, v in (("baseline", 0.7), ("imm", 0.9))]
    results = write_results(tmp_path / "results", cells, sizes=(5,), runs=1,
                            labels=("baseline", "imm"))
    rules = [{"rule": "ordering", "better": "imm", "worse": "baseline", "sizes": [5],
              "confidence": 0.95}]
    [row] = run_checks(load_results(results), load_reported(reported(tmp_path, rules)))
    assert not row.passed and "n = 1, no interval" in row.closeness
    assert row.closeness.endswith("cannot show a difference")


def test_the_data_gain_rule_measures_a_known_gain(tmp_path):
    sizes = (2, 4, 8, 16)
    runs = 11
    spread = np.linspace(-0.01, 0.01, runs)  # median = the centre

    def values(center: float) -> list[float]:
        return (center + spread).tolist()

    cells = [{"label": "baseline", "size": n, "seed": 0, "values": values(0.1 * math.log2(n))}
             for n in sizes]
    cells += [{"label": "imm", "size": n, "seed": 0, "values": values(0.1 * math.log2(1.3 * n))}
              for n in sizes]
    results = write_results(tmp_path / "results", cells, sizes=sizes, runs=runs,
                            labels=("baseline", "imm"))
    rules = [{"rule": "data_gain", "label": "imm", "value": 30, "tol": 1},
             {"rule": "data_gain", "label": "imm", "value": 60, "tol": 5, "required": False},
             {"rule": "data_gain", "label": "imm", "reference": "ghost", "value": 30, "tol": 1}]
    good, far, ghost = run_checks(load_results(results), load_reported(reported(tmp_path, rules)))
    assert good.passed and good.measured == "median +30.0% (3 of 4 sizes)"
    assert good.margin == pytest.approx(1.0, abs=1e-6)
    assert [p["gain"] for p in good.details["points"]][:3] == pytest.approx([30.0] * 3)
    assert good.details["points"][3]["gain"] is None  # beyond the baseline's largest size
    assert not far.passed and far.verdict == "FAIL (info)" and "below" in far.closeness
    assert not ghost.passed and "no method labelled 'ghost'" in ghost.closeness


def test_not_run_require_all_and_nothing_checked(tmp_path, capsys):
    cells = [{"label": "baseline", "size": 5, "seed": 0, "values": [0.8] * 4},
             {"label": "imm", "size": 5, "seed": 0, "status": "failed", "reason": "boom"}]
    results = write_results(tmp_path / "results", cells, sizes=(5, 10), runs=4,
                            labels=("baseline", "imm"))
    rules = [{"rule": "band", "label": "baseline", "size": 5, "value": 80, "plus": 1,
              "minus": 1},
             {"rule": "band", "label": "baseline", "size": 10, "value": 80, "plus": 1,
              "minus": 1},  # in the grid, no record yet: not run
             {"rule": "band", "label": "baseline", "size": 20, "value": 80, "plus": 1,
              "minus": 1},  # a size the results do not have: not run
             {"rule": "band", "label": "imm", "size": 5, "value": 80, "plus": 1, "minus": 1}]
    path = reported(tmp_path, rules, scale=100)
    ok, pending, absent, broken = run_checks(load_results(results), load_reported(path))
    assert ok.passed and pending.not_run and absent.not_run
    assert pending.closeness == "not run (no record of this cell yet)"
    assert not broken.passed and broken.closeness == "imm: no results (failed)"
    assert main(["check", str(results), "--against", str(path)]) == 1  # the failed cell
    rules.pop()
    path = reported(tmp_path, rules, scale=100)
    assert main(["check", str(results), "--against", str(path)]) == 0
    out = capsys.readouterr().out
    assert "1 passed, 0 failed (2 not run: not counted)" in out and "not run" in out
    assert main(["check", str(results), "--against", str(path), "--require-all"]) == 1
    out = capsys.readouterr().out
    assert "FAIL (not run)" in out and "2 counted as failed (--require-all)" in out
    # Nothing checked at all (every row not run) never passes.
    path = reported(tmp_path, rules[1:], scale=100)
    assert main(["check", str(results), "--against", str(path)]) == 1
    assert "nothing was checked" in capsys.readouterr().out


def test_text_fits_100_columns_and_junit_and_json_parse(tmp_path, capsys):
    path = REPO / "reported" / "logistic_table4.yaml"
    rng = np.random.default_rng(0)
    sizes = (5, 10, 15, 20, 30, 40, 50)
    cells = [{"label": lb, "size": n, "seed": 0,
              "values": np.clip(rng.normal(c + n / 200, 0.05, 30), 0, 1).tolist()}
             for lb, c in (("baseline", 0.75), ("noising", 0.7), ("noising_one_minus_ratio", 0.72),
                           ("imm", 0.8)) for n in sizes]
    cells = [c for c in cells if not (c["label"] == "imm" and c["size"] == 50)]  # not run
    results = write_results(tmp_path / "results", cells, sizes=sizes, runs=30,
                            labels=("baseline", "noising", "noising_one_minus_ratio", "imm"))
    status = main(["check", str(results), "--against", str(path)])
    text = capsys.readouterr().out
    assert all(len(line) <= 100 for line in text.splitlines()), max(map(len, text.splitlines()))
    assert "not run" in text and "misses by" in text
    junit = tmp_path / "check.xml"
    assert main(["check", str(results), "--against", str(path), "--format", "junit",
                 "-o", str(junit)]) == status
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites"
    [suite] = root.findall("testsuite")
    cases = suite.findall("testcase")
    rows = run_checks(load_results(results), load_reported(path))
    assert len(cases) == len(rows) == int(suite.get("tests"))
    failures = [c for c in cases if c.find("failure") is not None]
    assert len(failures) == int(suite.get("failures")) == sum(r.counts_as_failure for r in rows)
    assert all("expected" in f.find("failure").text and "measured" in f.find("failure").text
               for f in failures)
    skipped = [c for c in cases if c.find("skipped") is not None]
    # imm at 50: its band and its orderings with both noisings
    assert len(skipped) == sum(r.not_run for r in rows) == 3
    assert main(["check", str(results), "--against", str(path), "--format", "json"]) == status
    data = json.loads(capsys.readouterr().out)
    assert data["exit_status"] == status and len(data["check"]["rows"]) == len(rows)
    assert {r["verdict"] for r in data["check"]["rows"]} >= {"PASS", "not run"}


# ---- regression against an earlier run --------------------------------------------------------
def _lower_imm(record: dict) -> None:
    """A regression: imm's accuracy lowered by 0.01 in every replicate."""
    if record["label"] == "imm":
        record["metrics"]["accuracy"] = [v - 0.01 for v in record["metrics"]["accuracy"]]


def _edit_records(results: Path, edit) -> None:
    for path in (results / "cells").glob("*.json"):
        record = json.loads(path.read_text())
        edit(record)
        path.write_text(json.dumps(record))


def _provenance(record: dict) -> None:
    record.update(git_commit="a" * 40, versions={"torch": "2.13.0"}, threads=1)


def _journal(results: Path, host: str = "ci") -> None:
    lines = [json.dumps({"event": "recorded", "cell_id": p.stem, "host": host})
             for p in (results / "cells").glob("*.json")]
    (results / "journal.jsonl").write_text("\n".join(lines) + "\n")


def test_against_results_equal_on_a_copy_and_failing_when_lowered(paired, tmp_path, capsys):
    old = paired
    new = tmp_path / "new" / "toy"
    shutil.copytree(old, new)
    # No commit in these records: compared within the noise; identical numbers are equal.
    assert main(["check", str(new), "--against-results", str(old)]) == 0
    out = capsys.readouterr().out
    assert "nothing moved" in out and "compared: 6 equal" in out

    _edit_records(new, _lower_imm)
    assert main(["check", str(new), "--against-results", str(old)]) == 1
    out = capsys.readouterr().out
    assert "regressed" in out and all(len(line) <= 100 for line in out.splitlines())
    junit = tmp_path / "regression.xml"
    assert main(["check", str(new), "--against-results", str(old), "--format", "junit",
                 "-o", str(junit)]) == 1
    suite = ET.parse(junit).getroot().find("testsuite")
    failed = [c.get("name") for c in suite.findall("testcase") if c.find("failure") is not None]
    assert failed == ["imm N=10 [accuracy]"]  # only accuracy was lowered
    # Raised values are an improvement, not a failure.
    _edit_records(new, lambda r: r["metrics"].update(
        accuracy=[v + 0.02 for v in r["metrics"]["accuracy"]]) if r["label"] == "imm" else None)
    assert main(["check", str(new), "--against-results", str(old)]) == 0
    assert "improved" in capsys.readouterr().out


def test_against_results_expects_equality_when_the_inputs_are_the_same(paired, tmp_path, capsys):
    old = paired
    _edit_records(old, _provenance)
    _journal(old)
    new = tmp_path / "new" / "toy"
    shutil.copytree(old, new)
    assert main(["check", str(new), "--against-results", str(old), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)["regression"]
    assert {r["verdict"] for r in data["rows"]} == {"equal"}
    assert all(r["expect_equal"] for r in data["rows"])
    # A change far inside the noise still fails: the same inputs must give the same numbers.
    _edit_records(new, lambda r: r["metrics"].update(
        accuracy=[r["metrics"]["accuracy"][0] + 1e-9, *r["metrics"]["accuracy"][1:]])
        if r["label"] == "baseline" else None)
    assert main(["check", str(new), "--against-results", str(old)]) == 1
    assert "expected equal" in capsys.readouterr().out
    # On another host the same change is noise.
    _journal(new, host="elsewhere")
    assert main(["check", str(new), "--against-results", str(old)]) == 0


def test_against_results_a_cell_that_now_fails_is_a_regression(paired, tmp_path, capsys):
    new = tmp_path / "new" / "toy"
    shutil.copytree(paired, new)

    def fail(record: dict) -> None:
        if record["label"] == "noising":
            record.update(status="failed", reason="RuntimeError: boom", metrics={})

    _edit_records(new, fail)
    assert main(["check", str(new), "--against-results", str(paired)]) == 1
    assert "failed now" in capsys.readouterr().out
    assert main(["check", str(new)]) == 1
    assert "nothing to check against" in capsys.readouterr().err


def test_against_results_on_the_committed_smoke_records(tmp_path, capsys):
    """Real records (commit, versions, threads, journal): a copy is expected equal and is;
    a copy with IMM's accuracy lowered by one point fails."""
    old = REPO / "tests" / "data" / "smoke" / "smoke_logistic"
    new = tmp_path / "smoke_logistic"
    shutil.copytree(old, new)
    assert main(["check", str(new), "--against-results", str(old), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["regression"]["rows"]
    assert len(rows) == 4 * 2 * 3 and {r["verdict"] for r in rows} == {"equal"}
    assert all(r["expect_equal"] for r in rows)

    _edit_records(new, _lower_imm)
    assert main(["check", str(new), "--against-results", str(old)]) == 1
    out = capsys.readouterr().out
    assert out.count("changed") >= 2 and "expected equal" in out
