"""Reports from real result directories: pooling over seeds, tables in every format, plots."""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from harness.cli import main
from harness.report.command import report_command
from harness.report.formats import render
from harness.report.load import ReportError, load_results
from harness.report.run_report import write_run_report

LABELS = ("baseline", "noising", "imm")


def write_results(
    root: Path,
    cells: list[dict[str, Any]],
    *,
    name: str = "toy",
    sizes: tuple[int, ...] = (5, 10),
    labels: tuple[str, ...] = LABELS,
    runs: int = 50,
) -> Path:
    """A results directory as the runner writes it: spec.yaml + one JSON record per cell.

    Each cell dict needs label, size, seed and either ``values`` (accuracy per run; other
    metrics are derived) or ``status`` + ``reason``.
    """
    from harness.cells.grid import expand
    from harness.spec import validate_spec

    methods = {"baseline": "baseline", "noising": "noising", "imm": "imm_sampled",
               "noising_one_minus_ratio": "noising"}
    spec = validate_spec({
        "name": name,
        "task": {"name": "logistic", "params": {}},
        "methods": [{"name": methods.get(lb, lb), "label": lb}
                    | ({} if lb == "baseline" else {"lambda": 1.5}) for lb in labels],
        "sizes": list(sizes),
        "seeds": sorted({c["seed"] for c in cells}) or [0],
        "runs": runs,
        "metric": "accuracy",
        "output_dir": str(root),
    })
    grid = {(c.label, c.size, c.seed): c.cell_id for c in expand(spec)}
    results = root / name
    (results / "cells").mkdir(parents=True)
    dumped = spec.model_dump(mode="json", by_alias=True)
    (results / "spec.yaml").write_text(yaml.safe_dump(dumped), encoding="utf-8")
    (results / "grid.json").write_text(json.dumps({"spec": name, "cells": list(grid.values()),
                                                   "data": {}}))
    for cell in cells:
        label, size, seed = cell["label"], cell["size"], cell["seed"]
        values = [float(v) for v in cell.get("values", [])]
        metrics = {"accuracy": values, "log_loss": [1.0 - v for v in values]} if values else {}
        record = {
            "schema": 1, "cell_id": grid[(label, size, seed)], "spec": name, "task": "logistic",
            "method": methods.get(label, label), "label": label, "size": size, "seed": seed,
            "runs": len(values) or runs, "status": cell.get("status", "ok"),
            "reason": cell.get("reason"), "metrics": metrics, "config": {},
            "git_commit": "0123456789abcdef0123456789abcdef01234567",
            "started": f"2026-01-0{1 + seed}T10:00:00.000+00:00",
            "finished": f"2026-01-0{1 + seed}T10:05:00.000+00:00",
            "versions": {"python": "3.11.2", "torch": "2.13.0"}, "threads": 1,
            "machine": {"host": "box", "cpu": "Test CPU", "cores": 2, "device": "cpu"},
        }
        path = results / "cells" / f"{record['cell_id']}.json"
        path.write_text(json.dumps(record), encoding="utf-8")
    return results


def grid(rng: np.random.Generator, centers: dict[str, float], sizes=(5, 10), seeds=(0, 1),
         runs: int = 50) -> list[dict[str, Any]]:
    """Ok cells whose accuracy runs scatter around ``centers[label] + size / 100``."""
    return [
        {"label": lb, "size": n, "seed": s,
         "values": np.clip(rng.normal(c + n / 100, 0.03, runs), 0, 1).tolist()}
        for lb, c in centers.items() for n in sizes for s in seeds
    ]


@pytest.fixture
def results(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    cells = grid(rng, {"baseline": 0.80, "noising": 0.75, "imm": 0.85})
    return write_results(tmp_path / "results", cells)


def args(source: Path, **kw: Any) -> argparse.Namespace:
    defaults = {"format": "md", "metric": None, "plot": None, "output": None}
    return argparse.Namespace(source=str(source), **{**defaults, **kw})


def test_pools_runs_of_all_seeds(results: Path):
    rs = load_results(results)
    assert rs.labels == LABELS and rs.sizes == (5, 10) and rs.metric == "accuracy"
    cell = rs.pooled("accuracy")[("imm", 10)]
    records = [json.loads(p.read_text()) for p in (results / "cells").glob("*.json")]
    values = np.concatenate([r["metrics"]["accuracy"] for r in records
                             if r["label"] == "imm" and r["size"] == 10])
    assert cell.n == 100
    assert cell.median == pytest.approx(np.median(values))
    assert (cell.p10, cell.p90) == pytest.approx(tuple(np.percentile(values, [10, 90])))
    assert cell.mean == pytest.approx(values.mean())


def test_load_from_spec_file_uses_output_dir(results: Path, tmp_path: Path):
    spec = yaml.safe_load((results / "spec.yaml").read_text())
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(spec))
    rs = load_results(path)
    assert rs.results_dir == results and rs.labels == LABELS and len(rs.records) == 12


def test_no_results_is_one_clear_line(tmp_path: Path, capsys):
    empty = write_results(tmp_path / "results", [])
    with pytest.raises(ReportError, match=r"no results in .*toy: run `harness run"):
        load_results(empty)
    assert report_command(args(empty)) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no results in") and "\n" not in err
    assert main(["report", str(tmp_path / "nowhere.yaml")]) == 1  # through the CLI
    assert "no such spec file" in capsys.readouterr().err


def test_markdown_marks_best_median_per_row(results: Path):
    text = render(load_results(results), ["accuracy"], "md")
    rows = [line for line in text.splitlines() if re.match(r"\| (5|10) \|", line)]
    assert len(rows) == 2
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[3].startswith("**") and cells[1].count("**") == cells[2].count("**") == 0
    assert "accuracy (%)" in text and "higher is better" in text
    assert re.search(r"\d+\.\d\d \[\d+\.\d\d, \d+\.\d\d\] \(mean \d+\.\d\d\)", text)


def test_lower_is_better_metric_marks_minimum(results: Path):
    text = render(load_results(results), ["log_loss"], "md")
    row = next(line for line in text.splitlines() if line.startswith("| 5 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3].startswith("**")  # imm has the highest accuracy = lowest 1 - accuracy
    assert "lower is better" in text and "(%)" not in text.splitlines()[0]


def test_failed_and_skipped_cells_are_shown_with_reasons(tmp_path: Path):
    rng = np.random.default_rng(1)
    cells = grid(rng, {"baseline": 0.8, "imm": 0.85}, seeds=(0,))
    cells += [
        {"label": "noising", "size": 5, "seed": 0, "status": "failed", "reason": "Diverged: nan"},
        {"label": "noising", "size": 10, "seed": 0, "status": "skipped", "reason": "not here"},
    ]
    rs = load_results(write_results(tmp_path / "results", cells))
    md = render(rs, ["accuracy"], "md")
    assert "| failed |" in md and "| skipped |" in md
    assert "noising, N=5: seed 0: failed: Diverged: nan" in md
    assert "noising, N=10: seed 0: skipped: not here" in md
    rows = list(csv.DictReader(io.StringIO(render(rs, ["accuracy"], "csv"))))
    failed = next(r for r in rows if r["method"] == "noising" and r["size"] == "5")
    assert failed["status"] == "failed" and failed["median"] == "" and failed["best"] == "0"


def test_partially_run_grid_shows_not_run(tmp_path: Path):
    cells = grid(np.random.default_rng(2), {"baseline": 0.8}, sizes=(5,), seeds=(0,))
    md = render(load_results(write_results(tmp_path / "r", cells, sizes=(5, 10))), ["accuracy"],
                "md")
    assert "| — |" in md and "— = not run yet" in md


def test_csv_round_trip_and_best_flag(results: Path):
    rs = load_results(results)
    rows = list(csv.DictReader(io.StringIO(render(rs, ["accuracy", "log_loss"], "csv"))))
    assert len(rows) == 2 * 2 * 3
    for metric in ("accuracy", "log_loss"):
        for size in ("5", "10"):
            best = [r["method"] for r in rows
                    if r["metric"] == metric and r["size"] == size and r["best"] == "1"]
            assert best == ["imm"]
    imm = next(r for r in rows if r["metric"] == "accuracy" and r["method"] == "imm")
    assert float(imm["median"]) == pytest.approx(rs.pooled("accuracy")[("imm", 5)].median)
    assert int(imm["n"]) == 100


def test_latex_is_well_formed(results: Path):
    text = render(load_results(results), ["accuracy"], "latex")
    assert text.count(r"\begin{") == text.count(r"\end{") == 2
    assert _balanced(text.replace(r"\{", "").replace(r"\}", ""))
    body = [line for line in text.splitlines() if line.endswith(r"\\")]
    assert len(body) == 3 and all(line.count("&") == 3 for line in body)
    assert sum(r"\textbf{" in line for line in body[1:]) == 2
    assert r"(\%)" in text and "%" not in text.replace(r"\%", "")


VOID = {"meta", "img", "br", "hr", "link", "input"}


class PageParser(HTMLParser):
    """Checks that tags nest and collects what a self-contained page may hold."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.best = 0
        self.images: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag not in VOID:
            self.stack.append(tag)
        self.best += tag == "td" and "best" in (attrs.get("class") or "").split()
        if tag == "img":
            self.images.append(attrs.get("src") or "")
        for key in ("src", "href"):
            if attrs.get(key) and not attrs[key].startswith(("data:", "#")):
                self.external.append(attrs[key])

    def handle_endtag(self, tag):
        assert self.stack.pop() == tag


def test_html_is_a_styled_self_contained_page_with_every_metric_and_provenance(
        results: Path):
    text = render(load_results(results), ["accuracy", "log_loss"], "html")
    parser = PageParser()
    parser.feed(text)
    assert text.startswith("<!DOCTYPE html>") and "<style>" in text and "<script>" in text
    # a table per metric and the provenance's; a figure per metric
    assert parser.stack == [] and parser.best == 4 and text.count("<table") == 3
    assert len(parser.images) == 2
    assert all(src.startswith("data:image/png;base64,") for src in parser.images)
    assert parser.external == []  # nothing fetched from elsewhere
    provenance = text[text.index('id="provenance"'):]
    for fact in ("0123456789abcdef0123456789abcdef01234567", "2026-01-01T10:00:00.000+00:00",
                 "2026-01-02T10:05:00.000+00:00", "torch 2.13.0", "Test CPU, 2 cores",
                 "12 ok", str(results)):
        assert fact in provenance, fact
    assert "name: toy" in provenance and "metric: accuracy" in provenance  # the spec as run


def test_plot_is_written_even_when_mean_is_below_p10(tmp_path: Path):
    # 95 runs at 0.9 and 5 at 0.0: mean 0.855 < p10 = 0.9
    skewed = [0.9] * 95 + [0.0] * 5
    cells = [{"label": lb, "size": n, "seed": 0, "values": skewed}
             for lb in LABELS for n in (5, 10)]
    results = write_results(tmp_path / "results", cells)
    cell = load_results(results).pooled("accuracy")[("imm", 5)]
    assert cell.mean < cell.p10
    out = tmp_path / "plot.png"
    assert report_command(args(results, plot=str(out), output=str(tmp_path / "t.md"))) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_report_command_metric_choice(results: Path, capsys):
    assert report_command(args(results, metric="all")) == 0
    out = capsys.readouterr().out
    assert out.count("### ") == 2  # accuracy and log_loss; restricted_ce has no values
    assert report_command(args(results, metric="nope")) == 1
    assert "unknown metric 'nope'" in capsys.readouterr().err


def test_the_run_report_has_every_metric_in_every_file(results: Path):
    report = write_run_report(results)
    names = [p.name for p in report.files]
    assert names[:4] == ["report.html", "report.md", "report.csv", "plot.png"]
    assert sorted(names[4:]) == sorted(f"{m}.{x}" for m in ("accuracy", "log_loss")
                                       for x in ("png", "svg", "pdf"))
    assert all(p.is_file() and p.stat().st_size > 0 for p in report.files)
    for path in (report.html, report.markdown, report.csv):
        assert "log_loss" in path.read_text() and "accuracy" in path.read_text()
    assert "restricted_ce" not in report.markdown.read_text()  # no values: no table


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0
