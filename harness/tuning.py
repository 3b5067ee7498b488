"""Tune lambda with Optuna, once per (method label, dataset size), on validation data only.

Studies live in ``<results_dir>/optuna.db`` under the name ``<label>-size<size>``, so an
interrupted tuning resumes: only the trials still missing are run. The study remembers a
hash of the configuration it tunes; when the spec changes that configuration, the old
study is discarded rather than mixed with new trials.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from harness.errors import Diverged, SkipCell
from harness.runner.execute import LambdaChoice, build, evaluate, one_line
from harness.runner.grid import Cell, config_id

VALIDATION_SEED_BASE = 1_000_000
CONFIG_ATTR = "harness_config_id"

OnTrial = Callable[[int, int], None]  # (finished trials, target trials)


def study_name(label: str, size: int) -> str:
    return f"{label}-size{size}"


def validation_seed(spec: Any) -> int:
    """The data seed of tuning trials: derived from the tuning seed, never a spec seed, so
    tuning never trains on a cell's training set (and never sees its test points)."""
    seed = VALIDATION_SEED_BASE + spec.tuning.seed
    while seed in spec.seeds:
        seed += 1
    return seed


def tuning_config(cell: Cell) -> dict[str, Any]:
    """What a study depends on: the cell's config without its seed."""
    return {k: v for k, v in cell.config.items() if k != "seed"}


def tune_lambda(
    spec: Any,
    cell: Cell,
    storage: str,
    data_dir: str | None = None,
    *,
    max_new_trials: int | None = None,
    on_trial: OnTrial | None = None,
) -> LambdaChoice:
    """The tuned lambda for ``cell``'s (label, size), running only missing trials.

    ``max_new_trials`` caps the trials run by this call (to split a study over calls).
    A failure of the tuning itself is returned as a LambdaChoice with ``error`` set, so
    that the cells depending on it fail with that reason and the sweep goes on.
    """
    clock = time.perf_counter()
    name = study_name(cell.label, cell.size)
    try:
        study = _open_study(spec, cell, storage, name)
        target = spec.tuning.trials
        missing = max(0, target - _finished(study))
        if max_new_trials is not None:
            missing = min(missing, max_new_trials)
        if missing:
            callbacks = [lambda s, _t: on_trial(_finished(s), target)] if on_trial else []
            study.optimize(_objective(spec, cell, data_dir), n_trials=missing,
                           callbacks=callbacks)
        return _choice(cell, study, name, time.perf_counter() - clock)
    except Exception as exc:  # noqa: BLE001 - the dependent cells fail with this reason
        return LambdaChoice(None, "tuned", tune_s=time.perf_counter() - clock,
                            error=f"tuning {name}: {one_line(f'{type(exc).__name__}: {exc}')}")


def _open_study(spec: Any, cell: Cell, storage: str, name: str) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    metric = spec.metric
    better = type(spec.task.params).higher_is_better
    if metric not in better:
        raise ValueError(f"task '{spec.task.name}' does not say which way {metric!r} improves")
    wanted = config_id(tuning_config(cell))

    def create() -> Any:
        if spec.tuning.sampler == "tpe":
            sampler: Any = optuna.samplers.TPESampler(seed=spec.tuning.seed)
        else:
            sampler = optuna.samplers.RandomSampler(seed=spec.tuning.seed)
        return optuna.create_study(
            storage=storage, study_name=name, sampler=sampler, load_if_exists=True,
            direction="maximize" if better[metric] else "minimize",
        )

    study = create()
    have = study.user_attrs.get(CONFIG_ATTR)
    if have is not None and have != wanted:
        print(f"note: study {name} was made for another configuration; starting it afresh",
              file=sys.stderr)
        optuna.delete_study(study_name=name, storage=storage)
        study = create()
    study.set_user_attr(CONFIG_ATTR, wanted)
    _fail_abandoned(study)
    return study


def _fail_abandoned(study: Any) -> None:
    """Trials left RUNNING by a killed process will never finish: mark them failed."""
    from optuna.trial import TrialState

    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(trial.number, state=TrialState.FAIL)


def _finished(study: Any) -> int:
    """Trials that count toward the budget: completed, or pruned because they diverged."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False,
                                states=(TrialState.COMPLETE, TrialState.PRUNED)))


def _objective(spec: Any, cell: Cell, data_dir: str | None) -> Callable[[Any], float]:
    import optuna

    from harness.tasks.base import CellRequest

    tune = cell.entry.lambda_
    param = "ratio" if tune.scale == "ratio" else "lambda"
    runs = spec.tuning.runs or spec.runs
    reduce = np.mean if spec.tuning.objective == "mean" else np.median
    seed = validation_seed(spec)

    def objective(trial: Any) -> float:
        lam = tune.to_lambda(trial.suggest_float(param, tune.low, tune.high, log=tune.log))
        task, method = build(dict(cell.config), lam, data_dir)
        request = CellRequest(size=cell.size, seed=seed, runs=runs,
                              split="validation")
        try:
            metrics = evaluate(task, method, request)
        except (Diverged, SkipCell) as exc:
            raise optuna.TrialPruned(one_line(str(exc))) from None
        return float(reduce(metrics[spec.metric]))

    return objective


def _choice(cell: Cell, study: Any, name: str, seconds: float) -> LambdaChoice:
    from optuna.trial import TrialState

    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not completed:
        return LambdaChoice(None, "tuned", tune_s=seconds,
                            error=f"tuning {name}: no trial completed (all diverged?)")
    best = study.best_trial
    value = next(iter(best.params.values()))
    return LambdaChoice(
        value=float(cell.entry.lambda_.to_lambda(value)),
        source="tuned",
        tuning={"trials": len(completed), "best_value": float(best.value),
                "best_params": dict(best.params), "study": name},
        tune_s=seconds,
    )
