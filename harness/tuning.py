"""Tune lambda with Optuna, once per (method label, dataset size), on validation data only.

Studies live in ``<results_dir>/optuna.db`` under the name ``<label>-size<size>``, so an
interrupted tuning resumes: only the trials still missing are run. The study remembers a
hash of the configuration it tunes; when the spec changes that configuration, the old
study is discarded rather than mixed with new trials. In Optuna's dashboard the objective
is named (``validation <metric> (<mean|median>)``) and every trial shows its lambda: the
sampled parameter itself, or for ``scale: ratio`` the sampled ``ratio`` and the
``lambda`` it gives as a user attribute.

With a shared store (``--store postgresql+psycopg://...``) studies live in that database
instead, named ``<spec>/<label>-size<size>``, in Optuna's RDB storage with a heartbeat
(``$HARNESS_TRIAL_HEARTBEAT`` seconds, default 10; a trial silent for 3 beats is stale)
and ``RetryFailedTrialCallback``: a trial whose process was killed is marked FAIL and
retried with the same parameters, never left RUNNING. Tuning a study happens under a
claim of its own (one tuner per study at a time), so a RUNNING trial found when the
claim is taken is abandoned and is failed and retried at once.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from harness.cells.grid import Cell, config_id
from harness.cells.units import validation_seed
from harness.errors import Diverged, SkipCell
from harness.runner.execute import LambdaChoice, build, evaluate, one_line

CONFIG_ATTR = "harness_config_id"
HEARTBEAT_ENV = "HARNESS_TRIAL_HEARTBEAT"
TRIAL_RETRIES = 3

OnTrial = Callable[[int, int], None]  # (finished trials, target trials)


def study_name(label: str, size: int) -> str:
    return f"{label}-size{size}"


def tuning_config(cell: Cell) -> dict[str, Any]:
    """What a study depends on: the cell's config without its seed (and without the id
    of its seed's warm-up: trials start from the warm-up at the tuning seed)."""
    config = {k: v for k, v in cell.config.items() if k != "seed"}
    if config.get("warm_start"):
        config["warm_start"] = {k: v for k, v in config["warm_start"].items()
                                if k != "warm_up"}
    return config


def tune_lambda(
    spec: Any,
    cell: Cell,
    storage: str,
    data_dir: str | None = None,
    *,
    max_new_trials: int | None = None,
    on_trial: OnTrial | None = None,
    warm_start: Any = None,
) -> LambdaChoice:
    """The tuned lambda for ``cell``'s (label, size), running only missing trials.

    ``max_new_trials`` caps the trials run by this call (to split a study over calls).
    ``warm_start``: the trials' ``CellRequest.warm_start`` (a warm-started entry's trials
    start from its warm-up at the tuning seed).
    A failure of the tuning itself is returned as a LambdaChoice with ``error`` set, so
    that the cells depending on it fail with that reason and the sweep goes on.
    """
    clock = time.perf_counter()
    name = study_name(cell.label, cell.size)
    if not storage.startswith("sqlite"):
        name = f"{spec.name}/{name}"  # one database holds the studies of many specs
    try:
        study = _open_study(spec, cell, storage, name)
        target = spec.tuning.trials
        missing = max(0, target - _finished(study))
        if max_new_trials is not None:
            missing = min(missing, max_new_trials)
        if missing:
            callbacks = [lambda s, _t: on_trial(_finished(s), target)] if on_trial else []
            study.optimize(_objective(spec, cell, data_dir, warm_start), n_trials=missing,
                           callbacks=callbacks)
        return _choice(cell, study, name, time.perf_counter() - clock)
    except Exception as exc:  # noqa: BLE001 - the dependent cells fail with this reason
        return LambdaChoice(None, "tuned", tune_s=time.perf_counter() - clock,
                            error=f"tuning {name}: {one_line(f'{type(exc).__name__}: {exc}')}")


def heartbeat_s() -> int:
    try:
        return max(1, int(float(os.environ.get(HEARTBEAT_ENV, 10))))
    except ValueError:
        return 10


def rdb_storage(url: str) -> Any:
    """Optuna's storage for ``url``: a shared database gets RDB storage with a heartbeat
    and RetryFailedTrialCallback (see the module docstring); a file (sqlite) the URL."""
    if url.startswith("sqlite"):
        return url
    from optuna.storages import RDBStorage, RetryFailedTrialCallback

    from harness.runner.dbstore import sqlalchemy_url

    beat = heartbeat_s()
    return RDBStorage(sqlalchemy_url(url), heartbeat_interval=beat, grace_period=3 * beat,
                      failed_trial_callback=RetryFailedTrialCallback(max_retry=TRIAL_RETRIES),
                      engine_kwargs={"pool_pre_ping": True})


def _open_study(spec: Any, cell: Cell, storage: Any, name: str) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = rdb_storage(storage) if isinstance(storage, str) else storage
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
    with warnings.catch_warnings():  # set_metric_names is marked experimental
        warnings.simplefilter("ignore")
        study.set_metric_names([objective_name(spec)])
    _fail_abandoned(study)
    return study


def objective_name(spec: Any) -> str:
    """What a trial's value is, as Optuna's dashboard and plots name the objective."""
    return f"validation {spec.metric} ({spec.tuning.objective})"


def _fail_abandoned(study: Any) -> None:
    """Trials left RUNNING by a killed process will never finish: mark them failed (and,
    in a heartbeat storage, retried with the same parameters by its callback)."""
    from optuna.trial import TrialState

    storage = study._storage
    retry = None
    if hasattr(storage, "get_failed_trial_callback"):
        retry = storage.get_failed_trial_callback()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if retry is None:
            study.tell(trial.number, state=TrialState.FAIL)
            continue
        if storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
            retry(study, storage.get_trial(trial._trial_id))


def _finished(study: Any) -> int:
    """Trials that count toward the budget: completed, or pruned because they diverged."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False,
                                states=(TrialState.COMPLETE, TrialState.PRUNED)))


def _objective(spec: Any, cell: Cell, data_dir: str | None, warm_start: Any = None
               ) -> Callable[[Any], float]:
    import optuna

    from harness.tasks.base import CellRequest

    tune = cell.entry.lambda_
    param = "ratio" if tune.scale == "ratio" else "lambda"
    runs = spec.tuning.runs or spec.runs
    reduce = np.mean if spec.tuning.objective == "mean" else np.median
    seed = validation_seed(spec)

    def objective(trial: Any) -> float:
        lam = tune.to_lambda(trial.suggest_float(param, tune.low, tune.high, log=tune.log))
        if param != "lambda":  # the ratio is what is sampled; lambda is what users read
            trial.set_user_attr("lambda", float(lam))
        task, method = build(dict(cell.config), lam, data_dir)
        request = CellRequest(size=cell.size, seed=seed, runs=runs,
                              split="validation", warm_start=warm_start)
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
