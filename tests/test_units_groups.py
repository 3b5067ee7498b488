"""Units (tuning grid trials, warm-ups) beside cell groups and batched tuning. The rule:
a unit and a cell that starts from a warm-up are each a program of their own (never in a
group); cells that wait for units may share a group, which takes a cell only once every
unit it waits for is recorded; a grid-tuned entry (``lambda: {tune: {values}}``) is tuned
by its trials, an Optuna-tuned one (``lambda: tune``) by the batched studies. The records
equal those of a run without groups (real runner, real files)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from proc import journal

from harness.runner.sweep import run_spec
from harness.spec import validate_spec


def spec(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "task": {"name": "logistic", "params": {"epochs": 30, "test_size": 60}},
        "methods": [{"name": "baseline"},
                    {"name": "noising", "lambda": {"tune": {"values": [0.2, 0.4, 0.6]}}},
                    {"name": "imm_sampled", "label": "imm", "lambda": "tune"}],
        "sizes": [2, 5], "seeds": [0, 1], "runs": 4, "metric": "accuracy",
        "tuning": {"trials": 3, "sampler": "random"},
        "tracking": {"enabled": False},
    }


def records(root: Path) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in root.glob("cells/*.json")}


@pytest.mark.parametrize("workers", [1, 2])
def test_grid_trials_run_alone_and_their_cells_are_grouped_after_them(tmp_path, monkeypatch,
                                                                      workers) -> None:
    monkeypatch.chdir(tmp_path)
    grouped = run_spec(validate_spec(spec("grouped")), workers=workers)
    alone = run_spec(validate_spec(spec("alone")), groups=False)
    assert grouped.exit_code == alone.exit_code == 0
    a, b = records(grouped.results_dir), records(alone.results_dir)
    assert set(a) == set(b) and len(a) == 12 + 6  # 12 cells, 3 trials x 2 sizes
    trials = [r for r in a.values() if r.get("unit") == "trial"]
    assert len(trials) == 6
    assert all("group_cells" not in r["timings"] for r in trials)  # each its own program
    for cell_id, record in a.items():
        assert record["status"] == "ok", record["reason"]
        assert record["metrics"] == b[cell_id]["metrics"], cell_id
        assert record["lambda"] == b[cell_id]["lambda"], cell_id
    cells = [r for r in a.values() if not r.get("unit")]
    noising = [r for r in cells if r["label"] == "noising"]
    assert all(r["tuning"]["grid"] == b[r["cell_id"]]["tuning"]["grid"] for r in noising)
    assert {r["tuning"]["study"] for r in noising} == {"noising-size2 (grid)",
                                                        "noising-size5 (grid)"}
    imm = [r for r in cells if r["label"] == "imm"]
    assert all(r["tuning"]["trials"] == 3 and "grid" not in r["tuning"] for r in imm)
    if workers == 1:  # one process: every cell in groups, noising's once its trials are in
        assert all(r["timings"].get("group_cells", 1) > 1 for r in cells)
    # Each noising cell started after every trial of its size was recorded.
    events = journal(grouped.results_dir)
    at = {(e["event"], e.get("cell_id")): i for i, e in enumerate(events)}
    for record in noising:
        size_trials = [t["cell_id"] for t in trials if t["size"] == record["size"]]
        started = at[("started", record["cell_id"])]
        assert all(at[("recorded", t)] < started for t in size_trials)
