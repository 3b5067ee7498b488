"""Units that cells wait for: warm-ups and tuning trials, and what a cell takes from them.

A **warm-up** is the training of one method entry (the ``from`` of a ``warm_start``; its
configuration without its own ``warm_start``) from scratch at one size and seed until a
rule holds (``until``). It is a unit of its own: content-addressed (its id hashes that
configuration, the rule and the data), claimed, run, resumed and recorded like a cell
(its record says ``"unit": "warm-up"``), but not a row of any table. Its product is its
training state, ``<results>/warmups/<id>/run<r>.pt``, whose sha256 its record keeps.
Every cell that names the same ``from`` and ``until`` at that size and seed starts from
it, so it is trained once; the cell's id hashes the warm-up's id (``config.warm_start``),
and a failed or skipped warm-up fails or skips its cells with its reason.

A warm-up with ``until: converged`` resumes from the same entry's other warm-up when the
spec has one (an earlier point of the same training, so the numbers are those of
training from scratch): no epoch is trained twice. That link is operational: it is not
in the id.

A **trial** is one value of a tuned lambda's grid (``lambda: {tune: {values: [...]}}``):
the entry trained at the tuning seed with that value and evaluated on validation data,
as a unit, so that trials run in parallel with other cells and survive interruptions.
A tuned cell waits for its trials and takes the value whose validation metric is best
(``tuning.objective`` over the replicates). A tuned entry with a warm start tunes at
the tuning seed from a warm-up at that seed (a unit too).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from harness.runner.grid import Cell, cell_config, config_id

WARM_UP, TRIAL = "warm-up", "trial"
STATE_FILES = "run*.pt"


# ---- the units ----------------------------------------------------------------------------
def link_cell(spec: Any, entry: Any, size: int, seed: int, data: Any,
              config: dict[str, Any], identity: dict[str, Any]) -> tuple[str, ...]:
    """Put what a cell of ``entry`` starts from into its ``config`` and hashed
    ``identity``; return the ids of the units it waits for."""
    after: list[str] = []
    if entry.warm_start is not None:
        unit = warm_up(spec, entry.warm_start, size, seed, spec.runs, data)
        _link(config, identity, entry.warm_start, unit)
        after.append(unit.cell_id)
    if entry.tuned:
        after += [u.cell_id for u in tuning_units(spec, entry, size, data)]
    return tuple(after)


def _link(config: dict[str, Any], identity: dict[str, Any], warm: Any, unit: Cell) -> None:
    identity["warm_start"] = {"warm_up": unit.cell_id, "lr": warm.lr}
    config["warm_start"] = {"warm_up": unit.cell_id, "lr": warm.lr, "from": warm.from_,
                            "until": warm.until_dump()}


def entry_labelled(spec: Any, label: str) -> Any:
    return next(m for m in spec.methods if m.display == label)


def warm_up(spec: Any, warm: Any, size: int, seed: int, runs: int, data: Any) -> Cell:
    """The warm-up unit that ``warm`` (a WarmStart) names at one size and seed."""
    from harness.spec.models import task_params_for

    source = entry_labelled(spec, warm.from_)
    params = task_params_for(spec, source)
    hashes, files = data.identity(params), data.record(params)
    config = cell_config(spec, source, size, seed)
    identity = cell_config(spec, source, size, seed, identity=True, data=hashes)
    until = warm.until_dump()
    for target in (config, identity):
        target["runs"] = runs
        target["warm_up"] = {"until": until}
    after: tuple[str, ...] = ()
    if warm.rule[0] == "converged":
        earlier = _earlier_warm_up(spec, warm.from_)
        if earlier is not None:
            after = (warm_up(spec, earlier, size, seed, runs, data).cell_id,)
    return Cell(spec.methods.index(source), source, size, seed, config, config_id(identity),
                files, after, WARM_UP)


def _earlier_warm_up(spec: Any, label: str) -> Any:
    """The first warm start of the spec from ``label`` that stops before convergence."""
    for entry in spec.methods:
        warm = entry.warm_start
        if warm is not None and warm.from_ == label and warm.rule[0] != "converged":
            return warm
    return None


def tuning_units(spec: Any, entry: Any, size: int, data: Any) -> list[Cell]:
    """What a tuned entry's cells at ``size`` wait for: its grid's trials, or (Optuna
    tuning with a warm start) the warm-up at the tuning seed."""
    from harness.tuning import validation_seed

    seed = validation_seed(spec)
    runs = spec.tuning.runs or spec.runs
    tune = entry.lambda_
    if tune.values is None:
        if entry.warm_start is None:
            return []
        return [warm_up(spec, entry.warm_start, size, seed, runs, data)]
    return [trial(spec, entry, size, seed, runs, value, data) for value in tune.values]


def trial(spec: Any, entry: Any, size: int, seed: int, runs: int, value: float,
          data: Any) -> Cell:
    """One value of a tuned entry's grid, at the tuning seed, on validation data."""
    from harness.spec.models import task_params_for

    params = task_params_for(spec, entry)
    hashes, files = data.identity(params), data.record(params)
    tune = entry.lambda_
    config = cell_config(spec, entry, size, seed)
    identity = cell_config(spec, entry, size, seed, identity=True, data=hashes)
    for target in (config, identity):
        target.pop("tuning", None)  # what the trial is, not how its study is run
        target["runs"] = runs
        target["method"]["lambda"] = tune.to_lambda(value)
        target["trial"] = {"scale": tune.scale, "value": value, "split": "validation"}
    after: tuple[str, ...] = ()
    if entry.warm_start is not None:
        unit = warm_up(spec, entry.warm_start, size, seed, runs, data)
        _link(config, identity, entry.warm_start, unit)
        after = (unit.cell_id,)
    return Cell(spec.methods.index(entry), entry, size, seed, config, config_id(identity),
                files, after, TRIAL)


def units_for(spec: Any, cells: Iterable[Cell], data: Any) -> list[Cell]:
    """Every unit ``cells`` wait for, directly or through other units, each once, each
    after the units it waits for."""
    wanted: dict[str, Cell] = {}
    order: list[Cell] = []

    def visit(unit: Cell) -> None:
        if unit.cell_id in wanted:
            return
        wanted[unit.cell_id] = unit
        for dep in _units_of(spec, unit, data):
            visit(dep)
        order.append(unit)

    for cell in cells:
        for dep in _units_of(spec, cell, data):
            visit(dep)
    return order


def _units_of(spec: Any, cell: Cell, data: Any) -> list[Cell]:
    """The units ``cell`` waits for, rebuilt (cells keep only their ids)."""
    if not cell.after:
        return []
    if cell.unit == WARM_UP:
        earlier = _earlier_warm_up(spec, cell.entry.display)
        return [warm_up(spec, earlier, cell.size, cell.seed, cell.runs, data)]
    out = []
    warm = cell.entry.warm_start
    if warm is not None:
        out.append(warm_up(spec, warm, cell.size, cell.seed, cell.runs, data))
    if cell.unit is None and cell.entry.tuned:
        out += tuning_units(spec, cell.entry, cell.size, data)
    found = {u.cell_id for u in out}
    missing = [a for a in cell.after if a not in found]
    if missing:  # a bug, never the user's input
        raise RuntimeError(f"{cell.describe()}: units {missing} not rebuilt")
    return out


# ---- what a job takes from them ------------------------------------------------------------
def blocked_by(cell: Cell, settled: Mapping[str, dict[str, Any]]) -> tuple[str, str] | None:
    """(status, reason) when a unit ``cell`` starts from was not ok: its warm-up failed or
    was skipped (a tuned cell whose trials all failed fails when its lambda is chosen)."""
    warm = cell.config.get("warm_start")
    if not warm:
        return None
    record = settled[warm["warm_up"]]
    if record["status"] == "ok":
        return None
    status = "skipped" if record["status"] == "skipped" else "failed"
    return status, (f"warm-up {warm['from']} ({_until_text(warm['until'])}) size="
                    f"{record['size']} seed={record['seed']} {record['status']}: "
                    f"{record.get('reason')}")


def _until_text(until: Any) -> str:
    if isinstance(until, dict):
        [(name, value)] = until.items()
        return f"{name} {value:g}"
    return str(until)


def warm_plan(cell: Cell, settled: Mapping[str, dict[str, Any]], state_dir: Any
              ) -> dict[str, Any] | None:
    """What a job of ``cell`` needs to start or stop (plain data, sent to workers):
    ``start``/``files``/``lr`` (the folder of the state it starts from, its files'
    sha256), ``stop``/``save`` (a warm-up's rule and where its state goes), and
    ``record``: the ``warm_start`` block of the cell's record. ``state_dir(id)`` is the
    folder of unit ``id``'s state."""
    if cell.unit == WARM_UP:
        name, value = _rule(cell.config["warm_up"]["until"])
        plan: dict[str, Any] = {"stop": [name, value], "save": str(state_dir(cell.cell_id)),
                                "record": {"until": cell.config["warm_up"]["until"]}}
        if cell.after:  # resumed from an earlier warm-up of the same training
            earlier = settled[cell.after[0]]
            if earlier["status"] == "ok":
                plan.update(start_plan(earlier, state_dir, None))
                plan["record"]["resumed_from"] = earlier["cell_id"]
        return plan
    warm = cell.config.get("warm_start")
    if not warm:
        return None
    record = settled[warm["warm_up"]]
    plan = start_plan(record, state_dir, warm["lr"])
    plan["record"] = {**warm, "fork": dict(record.get("metrics") or {})}
    return plan


def start_plan(record: dict[str, Any], state_dir: Any, lr: float | None) -> dict[str, Any]:
    """The part of a plan that starts from ``record``'s (a warm-up's) saved state."""
    files = (record.get("warm_start") or {}).get("files") or {}
    return {"start": str(state_dir(record["cell_id"])), "files": dict(files), "lr": lr}


def _rule(until: Any) -> tuple[str, float | None]:
    if isinstance(until, dict):
        [(name, value)] = until.items()
        return str(name), float(value)
    return str(until), None


def request_of(plan: Mapping[str, Any] | None) -> Any:
    """The task's ``WarmStart`` for a job's plan (None: from scratch)."""
    if not plan:
        return None
    from harness.tasks.base import WarmStart

    stop = plan.get("stop")
    return WarmStart(start=plan.get("start"), lr=plan.get("lr"),
                     stop=(stop[0], stop[1]) if stop else None, save=plan.get("save"))


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def state_files(folder: str | Path) -> dict[str, str]:
    """{file name: sha256} of a warm-up's saved state."""
    return {p.name: sha256(p) for p in sorted(Path(folder).glob(STATE_FILES))}


def state_problem(plan: Mapping[str, Any] | None) -> str | None:
    """Why the state a job starts from cannot be used (missing or changed), or None."""
    if not plan or not plan.get("start"):
        return None
    folder, files = Path(plan["start"]), plan.get("files") or {}
    if not files:
        return f"warm start: the warm-up's record lists no state files (in {folder})"
    for name, digest in files.items():
        path = folder / name
        if not path.is_file():
            return (f"warm start: {path} is missing (warm starts need the results folder "
                    "on a file system every worker sees; rerun to train the warm-up again)")
        if sha256(path) != digest:
            return f"warm start: {path} changed since its warm-up recorded it"
    return None


def choose(cell: Cell, trials: list[dict[str, Any]], metric: str, higher: bool,
           objective: str) -> tuple[float | None, dict[str, Any] | None, str | None]:
    """(lambda, tuning info, error) of a tuned cell from its grid's trial records: the
    value whose validation ``metric`` (mean or median over replicates) is best."""
    import numpy as np

    reduce = np.mean if objective == "mean" else np.median
    scores: dict[float, float] = {}
    reasons = []
    for record in trials:
        value = float(record["config"]["trial"]["value"])
        values = (record.get("metrics") or {}).get(metric)
        if record["status"] == "ok" and values:
            scores[value] = float(reduce(values))
        else:
            reasons.append(f"{value:g}: {record.get('reason')}")
    name = f"{cell.label}-size{cell.size}"
    if not scores:
        return None, None, (f"tuning {name}: no trial of the grid completed ("
                            f"{'; '.join(reasons)})")
    best = (max if higher else min)(scores, key=lambda v: scores[v])
    tune = cell.entry.lambda_
    param = "ratio" if tune.scale == "ratio" else "lambda"
    info = {"trials": len(scores), "best_value": scores[best], "best_params": {param: best},
            "study": f"{name} (grid)", "grid": {f"{v:g}": s for v, s in scores.items()},
            "failed": reasons}
    return float(tune.to_lambda(best)), info, None


def tuning_warm_start(spec: Any, cell: Cell, known: Mapping[str, dict[str, Any]],
                      state_dir: Any) -> tuple[Any, str | None]:
    """(the trials' WarmStart, error) of an Optuna-tuned cell: its entry's warm-up at the
    tuning seed, when it has a warm start (else (None, None))."""
    from harness.tuning import validation_seed

    seed = validation_seed(spec)
    found = [r for r in known.values() if r.get("unit") == WARM_UP and r["seed"] == seed]
    if not found:
        return None, None
    [record] = found
    if record["status"] != "ok":
        return None, f"the warm-up at the tuning seed {record['status']}: {record.get('reason')}"
    plan = start_plan(record, state_dir, cell.entry.warm_start.lr)
    problem = state_problem(plan)
    return (None, problem) if problem else (request_of(plan), None)
