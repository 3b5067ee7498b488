"""Warm-ups under the code-identity and --fresh rules: a warm-up records its code, a fork
also records its warm-up's method code, a changed warm-up is retrained and its forks
recomputed (unless --reuse-changed-code), a scoped --fresh clears a warm-up only with all
the cells that start from it, and a warm-up's state is never written through a link.
In one process, on the real PTB files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import DATA, needs_ptb
from test_warm_start import by_label, lm_spec

from harness.atomic import LinkRefused
from harness.errors import HarnessError
from harness.runner import run_spec
from harness.spec import validate_spec

FORK = {"from": "baseline", "until": {"epochs": 1}, "lr": 0.5}
RKD = {"name": "reverse_kd", "lambda": 0.2, "warm_start": FORK}
NOISING = {"name": "noising", "lambda": 0.25, "warm_start": FORK}


def spec(*methods: dict[str, Any], out: str) -> Any:
    data = lm_spec({"name": "baseline"}, *methods, output_dir=out)
    data["task"]["params"]["max_epochs"] = 2
    return validate_spec(data)


def finished(results: Path) -> dict[str, str]:
    """{cell id: finished} of every record (units included) in the folder."""
    return {p.stem: json.loads(p.read_text())["finished"]
            for p in (results / "cells").glob("*.json")}


def the_unit(summary: Any) -> dict[str, Any]:
    [unit] = summary.units.values()
    return unit


def as_earlier_code(path: Path, kind: str) -> None:
    """Make the record at ``path`` one written by other code of its ``kind`` part."""
    record = json.loads(path.read_text())
    record["code"][kind]["sha256"] = "0" * 64
    path.write_text(json.dumps(record))


@needs_ptb
def test_a_changed_warm_up_is_retrained_and_its_forks_recomputed(
        write_spec, one_thread, capsys) -> None:
    warm = spec(RKD, out="code")
    first = run_spec(warm, data_dir=str(DATA))
    assert first.exit_code == 0
    unit, fork = the_unit(first), by_label(first)["reverse_kd"]
    assert unit["code"]["method"]["name"] == "baseline"
    assert fork["code"]["method"]["name"] == "reverse_kd"
    assert fork["code"]["warm_up"] == unit["code"]["method"]  # where it starts is recorded
    assert "warm_up" not in by_label(first)["baseline"]["code"]  # from scratch
    cells = first.results_dir / "cells"
    # The baseline method's code "changed" since the warm-up and the fork were recorded.
    as_earlier_code(cells / f"{unit['cell_id']}.json", "method")
    as_earlier_code(cells / f"{fork['cell_id']}.json", "warm_up")
    before = finished(first.results_dir)
    capsys.readouterr()

    kept = run_spec(warm, data_dir=str(DATA), reuse_changed_code=True)
    assert kept.computed == 0 and finished(first.results_dir) == before
    assert "kept (--reuse-changed-code)" in capsys.readouterr().err

    again = run_spec(warm, data_dir=str(DATA))
    err = capsys.readouterr().err
    assert again.exit_code == 0
    assert "method baseline: sources 000000000000 ->" in err  # the warm-up's own
    assert "warm-up method baseline: sources 000000000000 ->" in err  # the fork's
    now = finished(first.results_dir)
    baseline = by_label(first)["baseline"]["cell_id"]
    assert now[baseline] == before[baseline]  # its code did not change: kept
    assert now[unit["cell_id"]] != before[unit["cell_id"]]  # retrained
    assert now[fork["cell_id"]] != before[fork["cell_id"]]  # recomputed from the new state
    replaced = sorted(p.name.split(".")[0] for p in (cells / "replaced").glob("*.json"))
    assert replaced == sorted([unit["cell_id"], fork["cell_id"]])
    # The same code and seeds: the same numbers, now recorded with the current code.
    assert by_label(again)["reverse_kd"]["metrics"] == fork["metrics"]
    assert the_unit(again)["code"]["method"]["sha256"] != "0" * 64


@needs_ptb
def test_a_scoped_fresh_clears_a_warm_up_only_with_every_cell_that_starts_from_it(
        write_spec, one_thread) -> None:
    warm = spec(RKD, NOISING, out="fresh")
    first = run_spec(warm, data_dir=str(DATA))
    assert first.exit_code == 0
    unit = the_unit(first)
    state = first.results_dir / "warmups" / unit["cell_id"] / "run0.pt"
    before, stamp = finished(first.results_dir), state.stat().st_mtime_ns
    labels = {r["label"]: r["cell_id"] for r in first.records.values()}

    # noising also starts from the warm-up: it is kept, with its state.
    one = run_spec(warm, data_dir=str(DATA), fresh=True, only={"method": "reverse_kd"})
    assert one.exit_code == 0 and one.computed == 1
    now = finished(first.results_dir)
    assert now[unit["cell_id"]] == before[unit["cell_id"]]
    assert state.stat().st_mtime_ns == stamp
    assert now[labels["reverse_kd"]] != before[labels["reverse_kd"]]
    assert now[labels["noising"]] == before[labels["noising"]]

    # Every cell that starts from it selected: the warm-up is cleared and trained again.
    both = run_spec(warm, data_dir=str(DATA), fresh=True,
                    only={"method": ["reverse_kd", "noising"]})
    assert both.exit_code == 0 and both.computed == 2
    after = finished(first.results_dir)
    assert after[unit["cell_id"]] != now[unit["cell_id"]]
    assert after[labels["baseline"]] == before[labels["baseline"]]
    assert not (first.results_dir / "cells" / "replaced").exists()  # cleared, not replaced
    assert by_label(both)["noising"]["metrics"] == by_label(first)["noising"]["metrics"]


@needs_ptb
def test_a_link_planted_in_the_warm_ups_folder_is_refused_untouched(
        write_spec, one_thread, tmp_path) -> None:
    warm = spec(RKD, out="links")
    first = run_spec(warm, data_dir=str(DATA))
    unit = the_unit(first)
    state = first.results_dir / "warmups" / unit["cell_id"] / "run0.pt"
    users = tmp_path / "users.bin"
    users.write_bytes(b"the user's file")
    state.unlink()
    state.symlink_to(users)
    with pytest.raises(HarnessError, match=f"{state}: is a symbolic link"):
        run_spec(warm, data_dir=str(DATA))
    assert users.read_bytes() == b"the user's file"
    # A scoped --fresh that clears the warm-up removes the link, never its target.
    again = run_spec(warm, data_dir=str(DATA), fresh=True, only={"method": "reverse_kd"})
    assert again.exit_code == 0 and again.computed == 1
    assert users.read_bytes() == b"the user's file" and not state.is_symlink()


def test_a_warm_up_state_is_never_written_through_a_link(tmp_path) -> None:
    from harness.tasks.ptb_lstm.train import write_state

    users = tmp_path / "users"
    users.mkdir()
    (tmp_path / "warmups").symlink_to(users)
    with pytest.raises(LinkRefused):
        write_state({"x": 1}, tmp_path / "warmups" / "run0.pt", own_folder=True)
    target = tmp_path / "elsewhere.bin"
    target.write_bytes(b"keep")
    own = tmp_path / "own"
    own.mkdir()
    os.symlink(target, own / "run0.pt")
    with pytest.raises(LinkRefused):
        write_state({"x": 1}, own / "run0.pt", own_folder=True)
    assert target.read_bytes() == b"keep" and list(users.iterdir()) == []
    write_state({"x": 2}, tmp_path / "fine" / "run0.pt", own_folder=True)
    assert [p.name for p in (tmp_path / "fine").iterdir()] == ["run0.pt"]  # no temp left


@needs_ptb
def test_a_dry_run_names_the_units_the_cells_wait_for(write_spec) -> None:
    data = lm_spec({"name": "baseline"}, RKD, NOISING,
                   {"name": "interpolation", "lambda": {"tune": {"values": [0.1, 0.3]}},
                    "warm_start": {"from": "baseline"}}, seeds=[0, 1])
    path = write_spec(data)
    out = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(path), "--dry-run",
                          "--data-dir", str(DATA)], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    assert out.returncode == 0, out.stderr
    # Per seed (0, 1 and the tuning seed) one warm-up at epoch 1 (the forks') and one
    # converged (interpolation's, resumed from it), and the grid's 2 trials.
    assert ("units the cells wait for: 6 warm-up(s), 2 tuning trial(s), 0 already "
            "recorded") in out.stdout, out.stdout
    assert "Optuna" not in out.stdout  # a grid is no Optuna study
    assert not (path.parent / "results").exists()  # nothing written
