"""Units that cells wait for: warm-ups and tuning trials (what a job takes from them is
harness.runner.dependencies).

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

from collections.abc import Iterable
from typing import Any

from harness.cells.grid import Cell, cell_config, config_id

WARM_UP, TRIAL = "warm-up", "trial"
VALIDATION_SEED_BASE = 1_000_000


def validation_seed(spec: Any) -> int:
    """The data seed of tuning trials: derived from the tuning seed, never a spec seed, so
    tuning never trains on a cell's training set (and never sees its test points)."""
    seed = VALIDATION_SEED_BASE + spec.tuning.seed
    while seed in spec.seeds:
        seed += 1
    return seed


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
                            "until": warm.until_dump(),
                            "method": unit.config["method"]["name"]}  # its code is recorded


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


def units_only_for(spec: Any, selected: list[Cell], grid: list[Cell], data: Any
                   ) -> list[Cell]:
    """The units only ``selected`` cells wait for: no other cell of ``grid`` needs them,
    directly or through other units (what ``--fresh --only`` clears with the selection)."""
    chosen = {c.cell_id for c in selected}
    needed = {u.cell_id for u in units_for(spec, [c for c in grid if c.cell_id not in chosen],
                                           data)}
    return [u for u in units_for(spec, selected, data) if u.cell_id not in needed]


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


