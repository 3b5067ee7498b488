"""The PTB specs beside specs/ptb.yaml: the paper-scale spec carries the paper's recipe
(reference-setups.md, paper Sec. 7.2), the dataset-size spec its axis, each smoke spec
the same methods as its full spec, and the smoke paper spec runs end to end (batch-1
stream perplexity, induced perplexities, checkpoints cleaned up)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cells.data import CellData
from harness.runner import expand
from harness.spec import load_spec
from harness.spec.models import task_params_for

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not (DATA / "ptb" / "ptb.train.txt").is_file(),
                                reason=f"PTB files not at {DATA}/ptb")
METHODS = {"baseline", "interpolation", "noising", "reverse_kd", "imm_sampled",
           "imm_serialized"}


def methods(spec) -> dict[str, tuple]:
    return {m.name: (m.display, m.lambda_, m.model_dump(mode="json")["params"])
            for m in spec.methods}


def test_paper_spec_has_the_paper_recipe():
    spec = load_spec(ROOT / "specs" / "ptb_paper.yaml")
    p = spec.task.params
    assert (p.emb_size, p.hidden_size, p.layers, p.dropout, p.init_range) == (
        1500, 1500, 2, 0.65, 0.1)
    assert (p.batch_size, p.bptt, p.lr, p.clip, p.imm_clip) == (20, 35, 1.0, 5.0, 5.0)
    assert (p.lr_decay, p.max_decays, p.max_epochs) == (0.5, 20, 400)
    assert (p.finetune_below, p.finetune_lr) == (90, 0.5)
    assert p.stream_eval and p.checkpoint and p.eval_tokens is None
    assert p.induced_eval_tokens is None  # Table 5 over whole streams
    assert spec.sizes == [929589]
    m = methods(spec)
    assert set(m) == METHODS
    assert m["imm_sampled"][:2] == ("imm", 0.2)
    assert (m["imm_sampled"][2]["k"], m["imm_sampled"][2]["k_every"]) == (10, 5)
    assert (m["imm_serialized"][1], m["imm_serialized"][2]["refresh_every"]) == (0.2, "size")
    assert m["noising"][1] == 0.25  # r = 0.25 / 1.25 = 0.2 = gamma0
    assert m["reverse_kd"][1] == m["interpolation"][1] == 0.2
    # Noising trains with noising from the start (Xie et al.); the rest fine-tune.
    entries = {e.name: e for e in spec.methods}
    assert task_params_for(spec, entries["noising"]).finetune_below is None
    assert task_params_for(spec, entries["imm_sampled"]).finetune_below == 90


@needs_data
def test_sizes_spec_has_the_size_axis_and_all_six_methods():
    spec = load_spec(ROOT / "specs" / "ptb_sizes.yaml")
    assert spec.sizes == [50000, 100000, 200000, 400000]
    assert set(methods(spec)) == METHODS
    assert len(expand(spec, data=CellData(DATA))) == 24
    assert spec.task.params.checkpoint


@needs_data
def test_checkpointing_is_operational_and_leaves_cell_ids_alone(tmp_path):
    # Checkpointing changes how a cell runs, not its numbers: switching it (or moving the
    # checkpoint folder) keeps earlier results; a field that changes numbers does not.
    text = (ROOT / "specs" / "ptb.yaml").read_text()
    data = CellData(DATA)
    base = [c.cell_id for c in expand(load_spec(ROOT / "specs" / "ptb.yaml"), data=data)]
    for i, change in enumerate(["checkpoint: false", "checkpoint: true\n    checkpoint_dir: x",
                                "dropout: 0.3"]):
        path = tmp_path / f"s{i}.yaml"
        path.write_text(text.replace("dropout: 0.5", f"dropout: 0.5\n    {change}", 1)
                        if "dropout" not in change else text.replace("dropout: 0.5", change))
        ids = [c.cell_id for c in expand(load_spec(path), data=data)]
        assert (ids == base) == ("dropout" not in change), change


@pytest.mark.parametrize("name", ["ptb_sizes", "ptb_paper"])
def test_smoke_spec_mirrors_its_spec(name):
    full = load_spec(ROOT / "specs" / f"{name}.yaml")
    smoke = load_spec(ROOT / "specs" / "smoke" / f"{name}.yaml")
    assert smoke.name == f"smoke_{name}"
    lambdas = {k: v[:2] for k, v in methods(full).items()}
    assert {k: v[:2] for k, v in methods(smoke).items()} == lambdas
    assert [m.task_params for m in smoke.methods] == [m.task_params for m in full.methods]
    for flag in ("stream_eval", "checkpoint"):
        assert getattr(smoke.task.params, flag) == getattr(full.task.params, flag)
    assert (len(smoke.sizes) > 1) == (len(full.sizes) > 1)  # a size axis where it has one


@pytest.mark.skipif(not (DATA / "ptb" / "ptb.train.txt").exists(),
                    reason="PTB data not available")
def test_smoke_paper_spec_runs_all_six_methods(tmp_path, monkeypatch):
    import torch

    from harness.runner import run_spec

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HARNESS_CHECKPOINT_DIR", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: more threads only contend
    try:
        summary = run_spec(load_spec(ROOT / "specs" / "smoke" / "ptb_paper.yaml",
                                     overrides={"output_dir": str(tmp_path / "results")}),
                           data_dir=str(DATA))
    finally:
        torch.set_num_threads(threads)
    root = tmp_path / "results" / "smoke_ptb_paper"
    records = [json.loads(p.read_text()) for p in (root / "cells").glob("*.json")]
    assert len(records) == 6 and {r["status"] for r in records} == {"ok"}, summary.line()
    for r in records:
        assert set(r["metrics"]) == {"test_ppl", "valid_ppl", "test_ppl_stream",
                                     "induced_ppl_train", "induced_ppl_valid",
                                     "induced_ppl_test", "restricted_ppl_valid",
                                     "restricted_ppl_test"}
        assert all(1.0 < v[0] < 20000 for v in r["metrics"].values())
    assert not any((root / "checkpoints").iterdir())  # removed once each record was written
