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

Trials are evaluated in batches (``tune_lambdas``): every study of a sweep asks, round by
round, for the trials its sampler draws without waiting for results (``exact_batch``: all
of the random sampler's; TPE's random start-up trials, then one at a time), and all of
them train as one group (``Task.run_group`` with lambdas batched), so each study draws
the trials it draws one at a time, in the same order. Their values are within float
rounding of trials run alone (harness.tasks.groups), so the chosen lambda is the same
unless two trials tie to the last bit. With several local workers the runner tunes the
studies of different sizes in parallel processes (harness.tuning_lanes), each size's
studies whole in one of them.
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
from harness.runner.execute import (
    LambdaChoice,
    build,
    build_method,
    build_task,
    checked_metrics,
    evaluate,
    one_line,
    skip_reason,
    torch_threads,
)

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
    key = (cell.label, cell.size)
    return tune_lambdas(spec, [cell], storage, data_dir, max_new_trials=max_new_trials,
                        on_trial=on_trial, warm_starts={key: warm_start})[key]


class _Study:
    """One study being tuned: its cell, Optuna study, name, trial budget and error."""

    def __init__(self, cell: Cell, study: Any, name: str, missing: int,
                 warm_start: Any = None) -> None:
        self.cell, self.study, self.name, self.missing = cell, study, name, missing
        self.warm_start = warm_start  # where its trials start (None: from scratch)
        self.error: str | None = None


def tune_lambdas(
    spec: Any,
    cells: list[Cell],
    storage: str,
    data_dir: str | None = None,
    *,
    threads: int | None = None,
    max_new_trials: int | None = None,
    on_trial: OnTrial | None = None,
    batched: bool = True,
    warm_starts: dict[tuple[str, int], Any] | None = None,
) -> dict[tuple[str, int], LambdaChoice]:
    """The tuned lambda of each (label, size) of ``cells``, their studies' missing trials
    run in batches (see the module docstring; ``batched=False``: one trial at a time, each
    its own program, as ``harness run --no-groups``); ``threads``: torch's threads
    meanwhile. ``on_trial(done, target)`` counts the trials of all the studies together.
    ``warm_starts``: {(label, size): the trials' ``CellRequest.warm_start``} of studies
    whose trials start from a warm-up (the others train from scratch)."""
    clock = time.perf_counter()
    studies: dict[tuple[str, int], _Study] = {}
    choices: dict[tuple[str, int], LambdaChoice] = {}
    for cell in cells:
        key = (cell.label, cell.size)
        if key in studies or key in choices:
            continue
        name = study_name(cell.label, cell.size)
        if not storage.startswith("sqlite"):
            name = f"{spec.name}/{name}"  # one database holds the studies of many specs
        try:
            study = _open_study(spec, cell, storage, name)
        except Exception as exc:  # noqa: BLE001 - the dependent cells fail with this reason
            choices[key] = LambdaChoice(None, "tuned", error=f"tuning {name}: "
                                        f"{one_line(f'{type(exc).__name__}: {exc}')}")
            continue
        missing = max(0, spec.tuning.trials - _finished(study))
        if max_new_trials is not None:
            missing = min(missing, max_new_trials)
        studies[key] = _Study(cell, study, name, missing, (warm_starts or {}).get(key))
    target = sum(s.missing for s in studies.values())
    done = 0
    with torch_threads(threads):
        while True:
            batch = [(s, trial) for s in studies.values() if s.error is None
                     for trial in _ask(spec, s, batched)]
            if not batch:
                break
            if batched:
                _evaluate(spec, batch, data_dir)
            else:
                for s, trial in batch:
                    _tell_alone(spec, s, trial, data_dir)
            done += len(batch)
            if on_trial is not None:
                on_trial(done, target)
    seconds = time.perf_counter() - clock
    for key, s in studies.items():
        choices[key] = (LambdaChoice(None, "tuned", tune_s=seconds, error=s.error)
                        if s.error else _choice(s.cell, s.study, s.name, seconds))
    return choices


def exact_batch(spec: Any, study: Any) -> int:
    """How many trials ``study``'s sampler draws before it needs a result: all of the
    random sampler's, TPE's remaining random start-up trials, else one."""
    if spec.tuning.sampler == "random":
        return 1 << 30
    startup = getattr(study.sampler, "_n_startup_trials", 0)
    return max(1, startup - _finished(study))


def _ask(spec: Any, s: _Study, batched: bool = True) -> list[Any]:
    """The next trials of study ``s`` (at most its missing ones), lambda suggested."""
    tune = s.cell.entry.lambda_
    param = "ratio" if tune.scale == "ratio" else "lambda"
    trials = []
    for _ in range(min(s.missing, exact_batch(spec, s.study) if batched else 1)):
        trial = s.study.ask()
        value = trial.suggest_float(param, tune.low, tune.high, log=tune.log)
        if param != "lambda":  # the ratio is what is sampled; lambda is what users read
            trial.set_user_attr("lambda", float(tune.to_lambda(value)))
        trials.append(trial)
    s.missing -= len(trials)
    return trials


def _evaluate(spec: Any, batch: list[tuple[_Study, Any]], data_dir: str | None) -> None:
    """Train ``batch``'s trials, one group per task configuration, and tell each study
    its trials' values (``_tell``)."""
    import json

    from harness.tasks.base import CellRequest, GroupMember

    runs = spec.tuning.runs or spec.runs
    reduce = np.mean if spec.tuning.objective == "mean" else np.median
    seed = validation_seed(spec)
    by_task: dict[str, list[tuple[_Study, Any]]] = {}
    for s, trial in batch:
        by_task.setdefault(json.dumps(s.cell.config["task"], sort_keys=True), []).append(
            (s, trial))
    for part in by_task.values():
        outcomes: dict[int, Any] = {}
        members, owners = [], []
        task: Any = None
        try:
            task = build_task(dict(part[0][0].cell.config), data_dir)
            for i, (s, trial) in enumerate(part):
                lam = s.cell.entry.lambda_.to_lambda(next(iter(trial.params.values())))
                method = build_method(dict(s.cell.config), lam)
                reason = skip_reason(task, method)
                if reason:
                    outcomes[i] = SkipCell(reason)
                    continue
                members.append(GroupMember(method, CellRequest(
                    size=s.cell.size, seed=seed, runs=runs, split="validation",
                    warm_start=s.warm_start)))
                owners.append(i)
            for index, result in task.run_group(members, lambdas=True):
                outcomes[owners[index]] = result
        except Exception as exc:  # noqa: BLE001 - every trial of the part fails with it
            outcomes = {i: outcomes.get(i, exc) for i in range(len(part))}
        for i, (s, trial) in enumerate(part):
            result = outcomes.get(i, RuntimeError("no result"))
            _tell(s, trial, lambda r=result, t=task: _value(spec, t, r, runs, reduce))


def _value(spec: Any, task: Any, result: Any, runs: int, reduce: Any) -> float:
    """A trial's objective from its member's outcome (raising the member's exception)."""
    if isinstance(result, Exception):
        raise result
    return float(reduce(checked_metrics(task, result, runs)[spec.metric]))


def _tell(s: _Study, trial: Any, value: Callable[[], float]) -> None:
    """Tell study ``s`` the trial's ``value()``: a diverged or skipped trial is pruned; an
    error fails the trial and stops the study, whose cells then fail with it."""
    from optuna.trial import TrialState

    try:
        objective = value()
    except (Diverged, SkipCell) as exc:
        trial.set_user_attr("pruned", one_line(str(exc)))
        s.study.tell(trial, state=TrialState.PRUNED)
        return
    except Exception as exc:  # noqa: BLE001 - the study's cells fail with it
        s.study.tell(trial, state=TrialState.FAIL)
        s.error = f"tuning {s.name}: {one_line(f'{type(exc).__name__}: {exc}')}"
        return
    s.study.tell(trial, objective)


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


def _tell_alone(spec: Any, s: _Study, trial: Any, data_dir: str | None) -> None:
    """One trial as its own program (the task built for it alone), told to its study."""
    from harness.tasks.base import CellRequest

    runs = spec.tuning.runs or spec.runs
    reduce = np.mean if spec.tuning.objective == "mean" else np.median
    lam = s.cell.entry.lambda_.to_lambda(next(iter(trial.params.values())))

    def value() -> float:
        task, method = build(dict(s.cell.config), lam, data_dir)
        request = CellRequest(size=s.cell.size, seed=validation_seed(spec), runs=runs,
                              split="validation", warm_start=s.warm_start)
        return float(reduce(evaluate(task, method, request)[spec.metric]))

    _tell(s, trial, value)


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
