"""Warm starts and tuning grids (harness.runner.dependencies), in one process: the spec
syntax and its one-line errors, the ids, the numbers (a fork equals the in-run
fine-tuning switch; a continued warm-up equals training from scratch), failures passed
on with their reason, a tuning grid's choice. The runs with real processes (ordering,
kill -9, concurrent runs, PostgreSQL) are in tests/test_warm_start_processes.py."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import DATA, needs_ptb, small_spec

from harness.cells.data import CellData
from harness.cells.units import WARM_UP, units_for
from harness.runner import expand, run_spec
from harness.spec import SpecError, load_spec, validate_spec

PARAMS = {"emb_size": 8, "hidden_size": 8, "layers": 1, "dropout": 0.3, "bptt": 10,
          "batch_size": 4, "eval_batch_size": 4, "eval_tokens": 1500,
          "induced_eval_tokens": 1500, "max_epochs": 4, "checkpoint": True, "imm_window": 5,
          "imm_k": 2}
IMM = {"name": "imm_sampled", "label": "imm", "lambda": 0.2, "params": {"k": 2, "k_every": 2}}


def lm_spec(*methods: dict[str, Any], **changes: Any) -> dict[str, Any]:
    spec = {"name": "warm", "task": {"name": "ptb_lstm", "params": dict(PARAMS)},
            "methods": list(methods), "sizes": [2000], "seeds": [0], "runs": 1,
            "threads": 1, "tracking": {"enabled": False}}
    spec.update(changes)
    return spec


def records(root: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((root / "cells").glob("*.json"))]


def by_label(summary: Any) -> dict[str, dict[str, Any]]:
    return {r["label"]: r for r in summary.records.values()}


# ---- the spec: one line per problem, naming file and field ---------------------------------
@pytest.mark.parametrize(("warm", "message"), [
    ({"from": "baselin"}, "methods[1].warm_start.from: no method labelled 'baselin'. Did "
                          "you mean: baseline? Labels: baseline, imm"),
    ({"from": "baseline", "until": {"valid_pp_below": 90}},
     "methods[1].warm_start.until: unknown rule 'valid_pp_below' for task 'ptb_lstm'. Did you "
     "mean: valid_ppl_below? Known: valid_ppl_below, epochs, converged"),
    ({"from": "baseline", "lr": 0.5}, "methods[1].warm_start: lr: a converged warm-up has no "
                                      "schedule left"),
    ({"from": "baseline", "until": {"epochs": 2.5}},
     "methods[1].warm_start.until.epochs: expected a whole number of epochs, got 2.5"),
    ({"from": "baseline", "until": {"epochs": 2, "valid_ppl_below": 9}},
     "methods[1].warm_start.until: give one rule"),
    ({"from": "baseline", "until": {"epochs": -1}},
     "methods[1].warm_start.until: epochs: expected a number above 0, got -1"),
    ({"from": "baseline", "until": ["epochs"]}, "methods[1].warm_start.until: give one rule"),
    ({"from": "baseline", "unitl": "converged"}, "methods[1].warm_start.unitl: unknown field "
                                                 "(did you mean 'until'?)"),
])
def test_bad_warm_starts_are_one_line_naming_file_and_field(tmp_path, warm, message) -> None:
    spec = lm_spec({"name": "baseline"}, {**IMM, "warm_start": warm})
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert len(err.value.lines) == 1, err.value.lines
    assert err.value.lines[0].startswith(f"{path}: {message}"), err.value.lines[0]


def test_tasks_without_training_state_and_tuned_sources_are_refused() -> None:
    plain = small_spec()
    plain["methods"][1]["warm_start"] = {"from": "baseline"}
    with pytest.raises(SpecError, match=r"methods\[1\]\.warm_start: task 'logistic' keeps no "
                                        "training state"):
        validate_spec(plain)
    tuned = lm_spec({"name": "baseline"}, {"name": "noising", "lambda": "tune"},
                    {**IMM, "warm_start": {"from": "noising"}})
    with pytest.raises(SpecError, match=r"methods\[2\]\.warm_start\.from: the entry 'noising' "
                                        "tunes its lambda"):
        validate_spec(tuned)
    with pytest.raises(SpecError, match="values: each value once"):
        validate_spec(lm_spec({"name": "noising", "lambda": {"tune": {"values": [0.1, 0.1]}}}))
    with pytest.raises(SpecError, match="every value must be below 1"):
        validate_spec(lm_spec({"name": "noising", "lambda": {"tune": {"values": [0.1, 1.5]}}}))


# ---- ids --------------------------------------------------------------------------------
@needs_ptb
def test_a_dependants_id_hashes_its_warm_up_and_a_warm_up_is_shared() -> None:
    data = CellData(DATA)
    rkd = {"name": "reverse_kd", "lambda": 0.2}
    until = {"from": "baseline", "until": {"valid_ppl_below": 900}, "lr": 0.5}
    spec = validate_spec(lm_spec({"name": "baseline"}, {**IMM, "warm_start": until},
                                 {**rkd, "warm_start": until}, seeds=[0, 1]))
    cells = expand(spec, None, data)
    units = units_for(spec, cells, data)
    assert [u.unit for u in units] == [WARM_UP, WARM_UP]  # one per seed, shared by imm and rkd
    assert {u.seed for u in units} == {0, 1}
    by = {(c.label, c.seed): c for c in cells}
    for seed, unit in zip((0, 1), units, strict=True):
        assert by[("imm", seed)].after == by[("reverse_kd", seed)].after == (unit.cell_id,)
        assert by[("imm", seed)].config["warm_start"]["warm_up"] == unit.cell_id
    # The from-scratch baseline keeps its id whatever forks from it.
    alone = validate_spec(lm_spec({"name": "baseline"}, seeds=[0, 1]))
    assert [c.cell_id for c in expand(alone, None, data)] == \
           [c.cell_id for c in cells if c.label == "baseline"]
    # Another rule: another warm-up, so other dependants; another lr: the same warm-up.
    later = copy.deepcopy(spec.model_dump(mode="json", by_alias=True))
    later["methods"][1]["warm_start"]["until"] = {"valid_ppl_below": 800}
    later["methods"][2]["warm_start"]["lr"] = 0.25
    changed = {(c.label, c.seed): c for c in expand(validate_spec(later), None, data)}
    assert changed[("imm", 0)].cell_id != by[("imm", 0)].cell_id
    assert changed[("imm", 0)].after != by[("imm", 0)].after
    assert changed[("reverse_kd", 0)].cell_id != by[("reverse_kd", 0)].cell_id
    assert changed[("reverse_kd", 0)].after == by[("reverse_kd", 0)].after
    # --only takes the units its cells need along.
    only = expand(spec, {"method": "imm", "seed": 1}, data)
    assert [u.seed for u in units_for(spec, only, data)] == [1]


# ---- the numbers ------------------------------------------------------------------------
@needs_ptb
@pytest.mark.parametrize("method", [IMM, {"name": "imm_serialized", "lambda": 0.2,
                                          "params": {"refresh_every": "size"}},
                                    {"name": "noising", "lambda": 0.25}])
def test_a_fork_with_lr_equals_the_in_run_fine_tuning_switch(write_spec, one_thread,
                                                             method) -> None:
    """The warm-up's state at the first epoch below the threshold, then lr 0.5 and the term
    on: the numbers of one run with finetune_below / finetune_lr (the same switch)."""
    threshold = 1700.0  # crossed after the first or second of four epochs
    forked = lm_spec({"name": "baseline"},
                     {**method, "warm_start": {"from": "baseline",
                                               "until": {"valid_ppl_below": threshold},
                                               "lr": 0.5}}, output_dir="fork")
    inline = lm_spec({**method, "task_params": {"finetune_below": threshold,
                                                "finetune_lr": 0.5}}, output_dir="inline")
    a = run_spec(validate_spec(forked), data_dir=str(DATA))
    b = run_spec(validate_spec(inline), data_dir=str(DATA))
    assert a.exit_code == b.exit_code == 0
    label = method.get("label", method["name"])
    fork, whole = by_label(a)[label], by_label(b)[label]
    assert fork["metrics"] == whole["metrics"]
    [unit] = a.units.values()
    assert unit["unit"] == WARM_UP and unit["metrics"]["epochs"][0] < PARAMS["max_epochs"]
    assert unit["metrics"]["valid_ppl"][0] < threshold
    assert fork["warm_start"]["fork"] == unit["metrics"]
    assert fork["warm_start"]["warm_up"] == unit["cell_id"]
    state = Path("fork/warm/warmups") / unit["cell_id"] / "run0.pt"
    assert state.is_file() and list(unit["warm_start"]["files"]) == ["run0.pt"]


@needs_ptb
def test_a_continued_warm_up_gives_the_numbers_of_training_from_scratch(
        write_spec, one_thread, monkeypatch) -> None:
    """The baseline forked from its own warm-up without an lr (the schedule carries on),
    and evaluated from its converged warm-up (which resumed from the earlier one): the
    from-scratch baseline's numbers, each epoch trained once."""
    from harness.tasks.ptb_lstm.train import Trainer

    plain = run_spec(validate_spec(lm_spec({"name": "baseline"}, output_dir="plain")),
                     data_dir=str(DATA))
    epochs: list[int] = []
    run_epoch = Trainer.run_epoch

    def counted(self: Trainer) -> None:
        epochs.append(self.state.epoch)
        run_epoch(self)

    monkeypatch.setattr(Trainer, "run_epoch", counted)
    spec = lm_spec({"name": "baseline", "label": "continued",
                    "warm_start": {"from": "base", "until": {"epochs": 2}}},
                   {"name": "baseline", "label": "evaluated",
                    "warm_start": {"from": "base", "until": "converged"}},
                   {"name": "baseline", "label": "base"}, output_dir="warm")
    warm = run_spec(validate_spec(spec), data_dir=str(DATA))
    assert warm.exit_code == plain.exit_code == 0
    expected = by_label(plain)["baseline"]["metrics"]
    got = by_label(warm)
    assert got["continued"]["metrics"] == got["evaluated"]["metrics"] == expected
    assert got["base"]["metrics"] == expected
    units = {u["warm_start"]["until"] if isinstance(u["warm_start"]["until"], str)
             else "epochs": u for u in warm.units.values()}
    assert units["epochs"]["metrics"]["epochs"] == [2.0]
    assert units["converged"]["warm_start"]["resumed_from"] == units["epochs"]["cell_id"]
    assert units["converged"]["metrics"]["epochs"] == [4.0]
    # Epochs trained: "base" 0-3 (from scratch), the 2-epoch warm-up 0-1, the converged
    # one 2-3 (resumed), "continued" 2-3 (its fork), "evaluated" none.
    assert sorted(epochs) == [0, 0, 1, 1, 2, 2, 2, 3, 3, 3]


@needs_ptb
def test_a_warm_up_that_never_reaches_its_rule_fails_its_cells_with_the_reason(
        write_spec, one_thread) -> None:
    spec = validate_spec(lm_spec({"name": "baseline"}, {**IMM, "warm_start": {
        "from": "baseline", "until": {"valid_ppl_below": 5}, "lr": 0.5}}))
    summary = run_spec(spec, data_dir=str(DATA))
    assert summary.exit_code == 1
    [unit] = summary.units.values()
    assert unit["status"] == "failed"
    assert unit["reason"].startswith("warm-up not reached: validation perplexity never fell "
                                     "below 5: best ")
    imm = by_label(summary)["imm"]
    assert imm["status"] == "failed"
    assert imm["reason"] == (f"warm-up baseline (valid_ppl_below 5) size=2000 seed=0 failed: "
                             f"{unit['reason']}")
    assert by_label(summary)["baseline"]["status"] == "ok"
    again = run_spec(spec, data_dir=str(DATA))  # failures are retried, the rest resumed
    assert again.resumed == 1 and by_label(again)["imm"]["status"] == "failed"


@needs_ptb
def test_a_changed_warm_up_state_fails_the_cell_instead_of_forking_from_it(
        write_spec, one_thread) -> None:
    spec = lm_spec({"name": "baseline"}, {**IMM, "warm_start": {
        "from": "baseline", "until": {"epochs": 1}, "lr": 0.5}})
    first = run_spec(validate_spec(spec), data_dir=str(DATA), only={"method": "baseline"})
    assert first.exit_code == 0 and not first.units  # the baseline needs no warm-up
    units = units_for(validate_spec(spec), expand(validate_spec(spec), None, CellData(DATA)),
                      CellData(DATA))
    # Train the warm-up, then tamper with its state before the fork reads it.
    warm_only = run_spec(validate_spec(spec), data_dir=str(DATA), only={"method": "imm"})
    assert warm_only.exit_code == 0
    state = Path("results/warm/warmups") / units[0].cell_id / "run0.pt"
    state.write_bytes(state.read_bytes() + b"x")
    imm_id = by_label(warm_only)["imm"]["cell_id"]
    Path("results/warm/cells", f"{imm_id}.json").unlink()
    again = run_spec(validate_spec(spec), data_dir=str(DATA))
    imm = by_label(again)["imm"]
    assert imm["status"] == "failed"
    assert imm["reason"] == f"warm start: {state.resolve()} changed since its warm-up " \
                            "recorded it"


# ---- a tuning grid ------------------------------------------------------------------------
@needs_ptb
def test_a_tuning_grid_runs_each_value_once_at_the_tuning_seed_and_takes_the_best(
        write_spec, one_thread) -> None:
    spec = validate_spec(lm_spec(
        {"name": "noising", "lambda": {"tune": {"scale": "ratio", "values": [0.05, 0.4]}}},
        {"name": "interpolation", "lambda": {"tune": {"values": [0.1, 0.5]}},
         "warm_start": {"from": "baseline"}},
        {"name": "baseline"}, seeds=[0, 1]))
    summary = run_spec(spec, data_dir=str(DATA))
    assert summary.exit_code == 0
    trials = [u for u in summary.units.values() if u["unit"] == "trial"]
    assert sorted((t["label"], t["config"]["trial"]["value"]) for t in trials) == [
        ("interpolation", 0.1), ("interpolation", 0.5), ("noising", 0.05), ("noising", 0.4)]
    assert {t["seed"] for t in trials} == {1_000_000}
    warm_ups = [u for u in summary.units.values() if u["unit"] == WARM_UP]
    assert sorted(u["seed"] for u in warm_ups) == [0, 1, 1_000_000]  # the tuning seed's too
    for label in ("noising", "interpolation"):
        mine = [t for t in trials if t["label"] == label]
        best = min(mine, key=lambda t: t["metrics"]["test_ppl"][0])  # validation stream
        cells = [r for r in summary.records.values() if r["label"] == label]
        assert len(cells) == 2
        for cell in cells:
            assert cell["lambda"] == pytest.approx(best["lambda"])
            assert cell["lambda_source"] == "tuned"
            assert cell["tuning"]["trials"] == 2
            assert cell["tuning"]["best_value"] == best["metrics"]["test_ppl"][0]
    # interpolation from the converged baseline: evaluation only, its model the baseline's
    base = {r["seed"]: r for r in summary.records.values() if r["label"] == "baseline"}
    for cell in (r for r in summary.records.values() if r["label"] == "interpolation"):
        assert cell["metrics"]["induced_ppl_test"] == base[cell["seed"]]["metrics"][
            "induced_ppl_test"]
    again = run_spec(spec, data_dir=str(DATA))
    assert again.resumed == 6 and again.computed == 0 and len(again.units) == 7


@needs_ptb
def test_an_optuna_tuned_entry_with_a_warm_start_tunes_from_the_warm_up_at_the_tuning_seed(
        write_spec, one_thread) -> None:
    spec = validate_spec(lm_spec(
        {"name": "baseline"},
        {"name": "interpolation", "lambda": {"tune": {"low": 0.05, "high": 0.5}},
         "warm_start": {"from": "baseline"}}, tuning={"trials": 2}))
    summary = run_spec(spec, data_dir=str(DATA))
    assert summary.exit_code == 0, summary.line()
    # the cell's own warm-up and the one at the tuning seed, which the trials start from
    assert sorted((u["unit"], u["seed"]) for u in summary.units.values()) == [
        (WARM_UP, 0), (WARM_UP, 1_000_000)]
    cell = by_label(summary)["interpolation"]
    assert cell["lambda_source"] == "tuned" and cell["tuning"]["trials"] == 2
    # each trial evaluated the warm-up's model: their validation perplexities differ only
    # by the mixture, and both beat nothing trained (a fresh model is above 9000)
    import optuna

    study = optuna.load_study(study_name=cell["tuning"]["study"],
                              storage=f"sqlite:///{Path('results/warm/optuna.db').resolve()}")
    assert all(t.value < 3000 for t in study.trials)
