"""The PTB specs: the CPU-scale and paper-scale specs follow the paper's protocol (warm
starts, tuned noising, seeds), the paper-scale spec its recipe (reference-setups.md,
paper Sec. 7.2), the dataset-size spec its axis, each smoke spec the same methods and
warm starts as its full spec, and the smoke paper spec runs end to end (batch-1
stream perplexity, induced perplexities, checkpoints cleaned up)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cells.data import CellData
from harness.runner import expand
from harness.spec import load_spec

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
    assert p.finetune_below is None  # the switch is a fork from the warm-up (below)
    assert p.stream_eval and p.checkpoint and p.eval_tokens is None
    assert p.induced_eval_tokens is None  # Table 5 over whole streams
    assert spec.sizes == [929589] and len(spec.seeds) >= 3
    m = methods(spec)
    assert set(m) == METHODS
    assert m["imm_sampled"][:2] == ("imm", 0.2)
    assert (m["imm_sampled"][2]["k"], m["imm_sampled"][2]["k_every"]) == (10, 5)
    assert (m["imm_serialized"][1], m["imm_serialized"][2]["refresh_every"]) == (0.2, "size")
    assert m["reverse_kd"][1] == 0.2
    assert m["noising"][1].values == [0.05, 0.1, 0.2, 0.4]  # gamma0 tuned on validation
    assert m["interpolation"][1].values is not None  # r tuned on validation
    # The authors' protocol: the baseline to convergence without a reset; IMM, serialized
    # IMM and reverse-KD forked below validation perplexity 90 at lr 0.5; noising from
    # scratch; interpolation a mixture with the converged baseline.
    assert protocol(spec) == {
        "baseline": ("baseline", "converged", None), "noising": None,
        "imm": ("baseline", {"valid_ppl_below": 90.0}, 0.5),
        "imm_serialized": ("baseline", {"valid_ppl_below": 90.0}, 0.5),
        "reverse_kd": ("baseline", {"valid_ppl_below": 90.0}, 0.5),
        "baseline_lr_reset": ("baseline", {"valid_ppl_below": 90.0}, 0.5),
        "interpolation": ("baseline", "converged", None)}


def grid(entry: tuple) -> tuple:
    """(label, lambda) with a tuning grid reduced to its scale (smoke specs take part of
    the grid)."""
    label, lam = entry
    if getattr(lam, "values", None) is not None:
        return label, ("grid", lam.scale)
    return label, lam


def protocol(spec) -> dict[str, tuple | None]:
    """{label: (from, until, lr)} of each entry's warm start (None: from scratch)."""
    return {m.display: None if m.warm_start is None else (
        m.warm_start.from_, m.warm_start.until, m.warm_start.lr) for m in spec.methods}


def shape(spec) -> dict[str, tuple | None]:
    """The protocol without the scale-dependent threshold."""
    return {label: None if w is None else (w[0], w[1] if isinstance(w[1], str) else
                                           tuple(w[1]), w[2])
            for label, w in protocol(spec).items()}


def test_cpu_spec_follows_the_paper_protocol_with_seeds_for_intervals():
    spec = load_spec(ROOT / "specs" / "ptb.yaml")
    assert shape(spec) == shape(load_spec(ROOT / "specs" / "ptb_paper.yaml"))
    assert len(spec.seeds) >= 3 and spec.task.params.finetune_below is None
    assert methods(spec) == methods(load_spec(ROOT / "specs" / "ptb_paper.yaml")) | {
        "imm_sampled": methods(spec)["imm_sampled"]}  # the same lambdas and grids
    rules = [m.warm_start.until for m in spec.methods if m.warm_start is not None
             and m.warm_start.lr is not None]
    assert len({str(r) for r in rules}) == 1  # one warm-up per seed for every fork


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
    dropout = f"dropout: {load_spec(ROOT / 'specs' / 'ptb.yaml').task.params.dropout}"
    assert dropout in text
    for i, change in enumerate(["checkpoint: false", "checkpoint: true\n    checkpoint_dir: x",
                                "dropout: 0.45"]):
        path = tmp_path / f"s{i}.yaml"
        path.write_text(text.replace(dropout, f"{dropout}\n    {change}", 1)
                        if "dropout" not in change else text.replace(dropout, change))
        ids = [c.cell_id for c in expand(load_spec(path), data=data)]
        assert (ids == base) == ("dropout" not in change), change


@pytest.mark.parametrize("name", ["ptb", "ptb_sizes", "ptb_paper"])
def test_smoke_spec_mirrors_its_spec(name):
    full = load_spec(ROOT / "specs" / f"{name}.yaml")
    smoke = load_spec(ROOT / "specs" / "smoke" / f"{name}.yaml")
    assert smoke.name == f"smoke_{name}"
    assert shape(smoke) == shape(full)  # the same warm starts (thresholds are the scale's)
    lambdas = {k: grid(v[:2]) for k, v in methods(full).items()}
    assert {k: grid(v[:2]) for k, v in methods(smoke).items()} == lambdas
    for name_, (_, lam, _) in methods(smoke).items():  # a smoke grid: part of the full one
        if getattr(lam, "values", None) is not None:
            assert set(lam.values) <= set(methods(full)[name_][1].values)
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
    units = [r for r in records if r.get("unit")]
    records = [r for r in records if not r.get("unit")]
    assert len(records) == 7 and {r["status"] for r in records} == {"ok"}, summary.line()
    assert {r["status"] for r in units} == {"ok"}
    # per seed: the warm-up below the threshold and the converged one; at the tuning seed
    # the converged one (and its earlier point) for interpolation's trials; 4 + 7 trials
    assert sorted(r["unit"] for r in units).count("trial") == 4
    assert sorted(r["unit"] for r in units).count("warm-up") == 4
    for r in records:
        assert set(r["metrics"]) == {"test_ppl", "valid_ppl", "test_ppl_stream",
                                     "induced_ppl_train", "induced_ppl_valid",
                                     "induced_ppl_test", "restricted_ppl_valid",
                                     "restricted_ppl_test"}
        assert all(1.0 < v[0] < 20000 for v in r["metrics"].values())
    assert not any((root / "checkpoints").iterdir())  # removed once each record was written
