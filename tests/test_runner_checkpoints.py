"""The runner's checkpoint wiring: each cell runs with $HARNESS_CHECKPOINT_DIR =
<results>/checkpoints/<cell_id> (unless the user set it), an interrupted PTB cell resumes
from its last epoch with the numbers of an uninterrupted run, and a cell's checkpoints are
deleted once its final record is written (kept for a cell that will be retried).

The Trainer-level resume (serialized and sampled IMM, generator and snapshot state) is
tests/test_ptb_lstm.py::test_resume_from_a_checkpoint_equals_an_uninterrupted_run; this
file tests what the runner adds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import small_spec

from harness.cells.data import CellData
from harness.runner import execute, expand, run_spec
from harness.runner.execute import CHECKPOINT_ENV
from harness.runner.store import ResultsStore
from harness.spec import validate_spec

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not (DATA / "ptb" / "ptb.train.txt").exists(),
                                reason="PTB data not available")


def records(root: Path) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in (root / "cells").glob("*.json")}


# ---- the wiring and the deletion policy (no data, about a second) -------------------------
def test_each_cell_gets_its_own_checkpoint_dir_deleted_after_a_final_record(
        write_spec, monkeypatch) -> None:
    monkeypatch.delenv(CHECKPOINT_ENV, raising=False)
    spec = validate_spec(small_spec(seeds=[0], sizes=[2]))
    store = ResultsStore.for_spec(spec)
    seen: dict[str, str | None] = {}
    original = execute.evaluate

    def evaluate(task, method, request, progress=None):  # noqa: ANN001 - as execute.evaluate
        root = request.checkpoint_dir
        seen[method.name] = root
        Path(root, "run0.pt").parent.mkdir(parents=True, exist_ok=True)
        Path(root, "run0.pt").write_text("weights")
        if method.name == "noising":
            raise RuntimeError("a bug, fixed before the next run")
        return original(task, method, request, progress)

    monkeypatch.setattr(execute, "evaluate", evaluate)
    run_spec(spec, groups=False)  # each cell its own job (groups: tests/test_groups.py)
    cells = {c.method: c.cell_id for c in expand(spec)}
    assert seen == {m: str(store.checkpoint_dir(cid).resolve()) for m, cid in cells.items()}
    assert CHECKPOINT_ENV not in os.environ  # the request carries it, not the environment
    status = {r["method"]: r["status"] for r in records(store.root).values()}
    assert status == {"baseline": "ok", "imm_sampled": "ok", "noising": "failed"}
    # ok cells: checkpoints gone; the failed cell (retried on the next run) keeps its own.
    assert [p.name for p in (store.root / "checkpoints").iterdir()] == [cells["noising"]]
    monkeypatch.setattr(execute, "evaluate", original)
    assert run_spec(spec, groups=False).counts["ok"] == 3
    assert not any((store.root / "checkpoints").iterdir())


def test_a_checkpoint_dir_set_by_the_user_is_used_as_is_and_kept(write_spec, monkeypatch,
                                                                 tmp_path) -> None:
    mine = tmp_path / "mine"
    monkeypatch.setenv(CHECKPOINT_ENV, str(mine))
    seen = []

    def evaluate(task, method, request, progress=None):  # noqa: ANN001
        seen.append(request.checkpoint_dir)
        (mine / method.name).mkdir(parents=True)
        return {"accuracy": [0.5] * request.runs}

    monkeypatch.setattr(execute, "evaluate", evaluate)
    spec = validate_spec(small_spec(seeds=[0], sizes=[2]))
    assert run_spec(spec, groups=False).counts["ok"] == 3
    assert seen == [str(mine)] * 3
    assert sorted(p.name for p in mine.iterdir()) == ["baseline", "imm_sampled", "noising"]
    assert not (ResultsStore.for_spec(spec).root / "checkpoints").exists()


# ---- an interrupted PTB sweep resumes its cell from the last epoch -------------------------
PTB_SPEC = {
    "name": "ckpt",
    "task": {"name": "ptb_lstm", "params": {
        "emb_size": 8, "hidden_size": 8, "layers": 1, "dropout": 0.3, "bptt": 10,
        "batch_size": 4, "eval_batch_size": 4, "eval_tokens": 1500,
        "induced_eval_tokens": 1500, "max_epochs": 3, "checkpoint": True}},
    # noising draws from the method generator every batch (its state is checkpointed).
    "methods": [{"name": "noising", "lambda": 0.25}],
    "sizes": [2000],
    "seeds": [0],
    "runs": 1,
    "tracking": {"enabled": False},
}


@needs_data
def test_interrupted_ptb_sweep_resumes_from_the_last_epoch(write_spec, monkeypatch) -> None:
    from harness.tasks.ptb_lstm import train as train_module

    monkeypatch.delenv(CHECKPOINT_ENV, raising=False)
    Trainer = train_module.Trainer
    saves: list[Path] = []
    epochs_run: list[int] = []
    save, run_epoch, end_epoch = Trainer.save, Trainer.run_epoch, Trainer.end_epoch

    def spy_save(self):
        saves.append(self.path)
        save(self)

    def spy_run_epoch(self):
        epochs_run.append(self.state.epoch)
        run_epoch(self)

    monkeypatch.setattr(Trainer, "save", spy_save)
    monkeypatch.setattr(Trainer, "run_epoch", spy_run_epoch)

    whole_spec = validate_spec({**PTB_SPEC, "output_dir": "whole"})
    [cell] = expand(whole_spec, data=CellData(DATA))
    whole = run_spec(whole_spec, data_dir=str(DATA))
    assert whole.counts["ok"] == 1 and epochs_run == [0, 1, 2]
    whole_root = ResultsStore.for_spec(whole_spec).root
    assert saves and all(p.is_relative_to(whole_root.resolve() / "checkpoints" / cell.cell_id)
                         for p in saves)
    assert not (whole_root / "checkpoints" / cell.cell_id).exists()  # deleted after the record

    # The same sweep, killed after its first epoch's checkpoint.
    def interrupted(self):
        end_epoch(self)
        if self.state.epoch == 1:
            save(self)
            raise KeyboardInterrupt

    spec = validate_spec({**PTB_SPEC, "output_dir": "cut"})
    root = ResultsStore.for_spec(spec).root
    monkeypatch.setattr(Trainer, "end_epoch", interrupted)
    epochs_run.clear()
    with pytest.raises(KeyboardInterrupt):
        run_spec(spec, data_dir=str(DATA))
    assert epochs_run == [0] and not records(root)
    assert CHECKPOINT_ENV not in os.environ
    assert [p.name for p in (root / "checkpoints" / cell.cell_id).rglob("*.pt")] == ["run0.pt"]

    # A plain rerun: only the two remaining epochs train, and the numbers are identical.
    monkeypatch.setattr(Trainer, "end_epoch", end_epoch)
    epochs_run.clear()
    resumed = run_spec(spec, data_dir=str(DATA))
    assert resumed.counts["ok"] == 1 and epochs_run == [1, 2]
    [record] = records(root).values()
    [reference] = records(whole_root).values()
    assert record["metrics"] == reference["metrics"]
    assert not (root / "checkpoints" / cell.cell_id).exists()
