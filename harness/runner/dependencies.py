"""What a job takes from the units it waits for (harness.cells.units): the training state
a warm start starts from (checked by sha256 before it is used), the rule where a warm-up
stops and where its state goes, a blocked cell's reason, and a tuned cell's lambda chosen
from its grid's trial records.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.cells.grid import Cell
from harness.cells.units import WARM_UP, validation_seed

STATE_FILES = "run*.pt"


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
                plan.update(start_plan(earlier, state_dir, None, cell.config))
                plan["record"]["resumed_from"] = earlier["cell_id"]
        return plan
    warm = cell.config.get("warm_start")
    if not warm:
        return None
    record = settled[warm["warm_up"]]
    plan = start_plan(record, state_dir, warm["lr"], cell.config)
    plan["record"] = {**warm, "fork": dict(record.get("metrics") or {})}
    return plan


def start_plan(record: dict[str, Any], state_dir: Any, lr: float | None,
               config: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a plan that starts from ``record``'s (a warm-up's) saved state, for a
    job of ``config``: ``same_method`` when the warm-up trained the same method with the
    same params (its random streams then continue)."""
    files = (record.get("warm_start") or {}).get("files") or {}
    return {"start": str(state_dir(record["cell_id"])), "files": dict(files), "lr": lr,
            "same_method": _training(record["config"]) == _training(config)}


def _training(config: Mapping[str, Any]) -> dict[str, Any]:
    """A config's method block without what leaves its training's random streams alone
    (its label and lambda)."""
    return {k: v for k, v in config["method"].items() if k not in ("label", "lambda")}


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
                     stop=(stop[0], stop[1]) if stop else None, save=plan.get("save"),
                     same_method=bool(plan.get("same_method")))


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
    seed = validation_seed(spec)
    found = [r for r in known.values() if r.get("unit") == WARM_UP and r["seed"] == seed]
    if not found:
        return None, None
    [record] = found
    if record["status"] != "ok":
        return None, f"the warm-up at the tuning seed {record['status']}: {record.get('reason')}"
    plan = start_plan(record, state_dir, cell.entry.warm_start.lr, cell.config)
    problem = state_problem(plan)
    return (None, problem) if problem else (request_of(plan), None)
