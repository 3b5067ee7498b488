"""Optuna tuning of lambda: persistent studies that resume, validation data only."""

from __future__ import annotations

import optuna
import pytest
from conftest import small_spec

from harness.runner import expand, run_spec
from harness.runner.store import ResultsStore
from harness.spec import validate_spec
from harness.tasks.logistic.task import LogisticTask
from harness.tuning import study_name, tune_lambda, validation_seed


@pytest.fixture
def requests(monkeypatch: pytest.MonkeyPatch) -> list:
    """Every CellRequest the (real) logistic task receives."""
    seen = []
    original = LogisticTask.run_group  # a cell alone is a group of one

    def run_group(self, members, progress=None, **kwargs):
        seen.extend(member.request for member in members)
        return original(self, members, progress, **kwargs)

    monkeypatch.setattr(LogisticTask, "run_group", run_group)
    return seen


def test_interrupted_study_resumes_and_tuning_never_sees_test_data(tmp_path, monkeypatch,
                                                                    requests) -> None:
    monkeypatch.chdir(tmp_path)
    spec = validate_spec(small_spec(
        methods=[{"name": "imm_sampled", "label": "imm",
                  "lambda": {"tune": {"scale": "ratio", "low": 0.0, "high": 0.9}}}],
        sizes=[5], seeds=[0], tuning={"trials": 4, "runs": 3, "seed": 7},
    ))
    store = ResultsStore.for_spec(spec)
    store.claim_folders()
    store.prepare(spec, [], {})
    cell = expand(spec)[0]
    partial = tune_lambda(spec, cell, store.optuna_url, max_new_trials=2)  # "interrupted"
    assert partial.tuning["trials"] == 2
    assert len(requests) == 2

    summary = run_spec(spec)
    study = optuna.load_study(study_name=study_name("imm", 5), storage=store.optuna_url)
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(done) == 4 and len(study.trials) == 4
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE  # accuracy

    record = summary.records[cell.cell_id]
    assert record["status"] == "ok" and record["lambda_source"] == "tuned"
    ratio = study.best_trial.params["ratio"]
    assert record["lambda"] == pytest.approx(ratio / (1 - ratio))
    assert record["tuning"] == {"trials": 4, "best_value": study.best_value,
                                "best_params": study.best_params, "study": "imm-size5"}
    assert "tuning" in record["config"]

    tuning_requests = requests[:-1]
    assert len(tuning_requests) == 4
    assert all(r.split == "validation" and r.runs == 3 for r in tuning_requests)
    assert {r.seed for r in tuning_requests} == {validation_seed(spec)} != {0}
    assert requests[-1].split == "test" and requests[-1].seed == 0

    assert run_spec(spec).resumed == 1
    assert len(study.trials) == 4


def test_validation_seed_avoids_spec_seeds() -> None:
    spec = validate_spec(small_spec(seeds=[1_000_000, 1_000_001], tuning={"seed": 0}))
    assert validation_seed(spec) == 1_000_002


def test_diverging_trials_are_pruned_and_the_cell_fails_with_a_reason(tmp_path, monkeypatch
                                                                        ) -> None:
    monkeypatch.chdir(tmp_path)
    spec = validate_spec(small_spec(
        task={"name": "logistic", "params": {"epochs": 20, "loss_form": "additive"}},
        methods=[{"name": "imm_sampled", "label": "imm",
                  "lambda": {"tune": {"scale": "lambda", "low": 1e299, "high": 1e300}}}],
        sizes=[2], seeds=[0], tuning={"trials": 2, "runs": 2},
    ))
    summary = run_spec(spec)
    (record,) = summary.records.values()
    assert record["status"] == "failed" and "no trial completed" in record["reason"]
    assert summary.exit_code == 1
    storage = ResultsStore.for_spec(spec).optuna_url
    study = optuna.load_study(study_name="imm-size2", storage=storage)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.PRUNED] * 2


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_batched_trials_draw_what_one_at_a_time_draws(tmp_path, sampler) -> None:
    """Trials in batches (every study of the sweep at once, lambdas batched) ask the same
    lambdas in the same order as one trial at a time, and choose the same one: all of the
    random sampler's trials form one batch, TPE's random start-up ones too."""
    from harness.tuning import exact_batch, tune_lambdas

    spec = validate_spec(small_spec(
        methods=[{"name": "reverse_kd", "lambda": "tune"},
                 {"name": "noising", "lambda": "tune"},
                 {"name": "imm_sampled", "label": "imm",
                  "lambda": {"tune": {"scale": "ratio", "low": 0.0, "high": 0.9}}}],
        sizes=[3, 6], seeds=[0],
        tuning={"trials": 12, "runs": 4, "seed": 3, "sampler": sampler}))
    cells = expand(spec)
    choices = {}
    for batched in (True, False):
        storage = f"sqlite:///{tmp_path}/{batched}.db"
        choices[batched] = tune_lambdas(spec, cells, storage, batched=batched, threads=1)
    for key, choice in choices[True].items():
        alone = choices[False][key]
        assert choice.error is None and alone.error is None
        assert choice.value == alone.value, key
        name = study_name(*key)
        trials = [optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path}/{b}.db"
                                    ).trials for b in (True, False)]
        assert [t.params for t in trials[0]] == [t.params for t in trials[1]]
        assert [t.value for t in trials[0]] == pytest.approx([t.value for t in trials[1]],
                                                             abs=1e-9)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    assert exact_batch(spec, study) == (1 << 30 if sampler == "random" else 10)
