"""Read one spec's results and pool runs per (label, size).

Reports read their grid, never the whole folder: a spec file selects the records whose
cell ids are in its grid as it is now (its settings and the current data's hashes); a
results folder selects those of its last run (``grid.json``). Records of other
configurations that share the folder are left out, with a note on stderr saying how many
and how to list them (``harness records``).

Reports and checks never look at a single seed: the per-run values of every ok cell of
the same (label, size) are pooled across seeds, so that the percentiles describe the
spread over all replicates, as in the paper's figures and tables. Cells that failed or
were skipped are kept as such (with their reasons), never silently dropped.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from harness.cells.folder import read_all_records, read_grid

STATISTICS = ("median", "mean", "p10", "p90")


class ReportError(ValueError):
    """A report or check cannot be made; the message is one line meant for the user."""


@dataclass(frozen=True)
class Pooled:
    """The pooled per-run values of one (label, size) and what happened to its cells."""

    label: str
    size: int
    values: np.ndarray = field(repr=False)
    statuses: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def status(self) -> str:
        """ok (has values), failed, skipped, missing (never run) or no data (metric absent)."""
        if self.values.size:
            return "ok"
        for status in ("failed", "skipped"):
            if status in self.statuses:
                return status
        return "missing" if not self.statuses else "no data"

    @property
    def n(self) -> int:
        return int(self.values.size)

    @cached_property
    def _quantiles(self) -> tuple[float, float, float]:
        p10, median, p90 = np.percentile(self.values, [10, 50, 90])
        return float(p10), float(median), float(p90)

    @property
    def p10(self) -> float:
        return self._quantiles[0]

    @property
    def median(self) -> float:
        return self._quantiles[1]

    @property
    def p90(self) -> float:
        return self._quantiles[2]

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    def stat(self, name: str) -> float:
        """One of STATISTICS by name (rules in reported files choose it)."""
        if name not in STATISTICS:
            raise ReportError(f"unknown statistic {name!r}; known: {', '.join(STATISTICS)}")
        return float(getattr(self, name))


@dataclass(frozen=True)
class ResultSet:
    """Everything a report needs: the spec as run, its cell records and the task's metrics."""

    spec: dict[str, Any]
    records: list[dict[str, Any]]
    results_dir: Path
    task: str
    metric: str
    metrics: tuple[str, ...]
    higher_is_better: dict[str, bool]
    labels: tuple[str, ...]
    sizes: tuple[int, ...]
    data: dict[str, Any] = field(default_factory=dict)  # {role: {path, size, sha256}}
    left_out: int = 0  # records in the folder that are not of this grid
    code_note: str | None = None  # one line when the records mix code identities

    @property
    def name(self) -> str:
        return str(self.spec.get("name", self.results_dir.name))

    def better_high(self, metric: str) -> bool:
        """Whether larger values of ``metric`` are better (unknown metrics: yes)."""
        return self.higher_is_better.get(metric, True)

    def check_metric(self, metric: str) -> str:
        if metric not in self.metrics:
            known = ", ".join(self.metrics)
            raise ReportError(f"unknown metric {metric!r} for task '{self.task}'; known: {known}")
        return metric

    @property
    def paired(self) -> bool:
        """Whether the task pairs replicate i across methods (its params model declares
        ``paired_replicates``): statistics then pair by (seed, replicate), else by seed."""
        from harness.report.stats import task_pairs_replicates

        return task_pairs_replicates(self.task)

    def replicates(self, metric: str) -> dict[tuple[str, int], dict[tuple[int, int], float]]:
        """{(label, size): {(seed, replicate): value}} of the ok cells (finite values)."""
        from harness.report.stats import replicate_values

        self.check_metric(metric)
        return replicate_values(self.records, metric)

    def pooled(self, metric: str) -> dict[tuple[str, int], Pooled]:
        """Pooled statistics of ``metric`` for every (label, size) of the grid."""
        self.check_metric(metric)
        groups: dict[tuple[str, int], list[dict[str, Any]]] = {
            (label, size): [] for label in self.labels for size in self.sizes
        }
        for record in self.records:
            groups[(record_label(record), int(record["size"]))].append(record)
        return {key: _pool(key, cells, metric) for key, cells in groups.items()}


def metrics_with_results(rs: ResultSet) -> list[str]:
    """The metrics that have a value in some cell, in the task's order (else the
    headline metric, so that a report of nothing but failures still has its table)."""
    return [m for m in rs.metrics if any(p.n for p in rs.pooled(m).values())] or [rs.metric]


def record_label(record: dict[str, Any]) -> str:
    return str(record.get("label") or record["method"])


def _pool(key: tuple[str, int], cells: list[dict[str, Any]], metric: str) -> Pooled:
    values: list[np.ndarray] = []
    problems: list[str] = []
    for cell in sorted(cells, key=lambda c: c.get("seed", 0)):
        seed = cell.get("seed", "?")
        if cell["status"] != "ok":
            problems.append(f"seed {seed}: {cell['status']}: {cell.get('reason') or 'no reason'}")
            continue
        raw = np.asarray(cell.get("metrics", {}).get(metric, []), dtype=float).ravel()
        finite = raw[np.isfinite(raw)]
        if finite.size < raw.size:
            problems.append(
                f"seed {seed}: {raw.size - finite.size} of {raw.size} runs non-finite (left out)"
            )
        values.append(finite)
    pooled = np.concatenate(values) if values else np.empty(0)
    statuses = tuple(str(c["status"]) for c in cells)
    return Pooled(key[0], key[1], pooled, statuses, tuple(problems))


def display_scale(metric: str, pooled: dict[tuple[str, int], Pooled]) -> tuple[float, str]:
    """(factor, unit): accuracy-like metrics whose values are fractions are shown in percent."""
    values = [p.values for p in pooled.values() if p.n]
    fraction = bool(values) and all(((v >= 0) & (v <= 1)).all() for v in values)
    if fraction and "acc" in metric.lower():
        return 100.0, " (%)"
    return 1.0, ""


def runs_text(pooled: dict[tuple[str, int], Pooled]) -> str:
    """'300 runs', or '280-300 runs' when cells pooled different numbers of runs."""
    counts = sorted({p.n for p in pooled.values() if p.n})
    if not counts:
        return "0 runs"
    span = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    return f"{span} runs"


def load_results(source: str | Path, data_dir: str | None = None,
                 note: bool = True) -> ResultSet:
    """The records of a spec's grid: named by a spec file (``<output_dir>/<name>/``,
    ids computed with the data found by --data-dir / the spec / $HARNESS_DATA_DIR) or by
    a results folder (the grid of its last run). ``note``: say on stderr how many records
    of other configurations were left out."""
    source = Path(source)
    if source.is_dir():
        results_dir = source
        spec_path = results_dir / "spec.yaml"
        if not spec_path.is_file():
            raise ReportError(f"{results_dir}: no spec.yaml: not a results directory")
        spec = _read_yaml(spec_path)
        saved = _saved_grid(results_dir)
        expect = (_saved_expectations(saved, spec) if saved
                  else _grid_ids(_validated(spec, spec_path), data_dir, results_dir))
    else:
        from harness.spec import load_spec
        from harness.spec.paths import results_folder

        model = load_spec(source)
        spec = model.model_dump(mode="json", by_alias=True)
        results_dir = results_folder(model)
        expect = _grid_ids(model, data_dir, results_dir)
    found = _read_records(results_dir, source)
    records = [r for r in found if r["cell_id"] in expect
               and _of_its_cell(r, expect[r["cell_id"]], results_dir)]
    left_out = len([r for r in found if r["cell_id"] not in expect])
    if left_out and note:
        print(f"note: {left_out} record(s) in {results_dir / 'cells'} are of other settings "
              f"or data than this grid and are left out; `harness records {results_dir}` "
              "lists them", file=sys.stderr)
    if not records:
        spec_arg = "SPEC" if source.is_dir() else source
        raise ReportError(f"no results of this grid in {results_dir}: run `harness run "
                          f"{spec_arg}` first")
    if note and not source.is_dir():  # which folder a spec file names, and why
        from harness.spec.paths import where

        print(f"{source}: {where(model)}", file=sys.stderr)
    rs = _result_set(spec, records, results_dir)
    data: dict[str, Any] = {}
    for record in records:
        data.update(record.get("data") or {})
    from harness.report.identity import code_mix

    code_note = code_mix(records)
    if code_note and note:
        print(f"{code_note} ({results_dir})", file=sys.stderr)
    return replace(rs, data=data, left_out=left_out, code_note=code_note)


def _of_its_cell(record: dict[str, Any], expect: dict[str, Any], results_dir: Path) -> bool:
    """Whether ``record`` is the record of the cell its id names in this grid (its task,
    method, label, size, seed and default metric); else a warning, left out."""
    from harness.cells.record import cell_problem

    problem = cell_problem(record, expect)
    if problem is None:
        return True
    print(f"warning: {results_dir / 'cells' / (record['cell_id'] + '.json')}: not this "
          f"cell's record ({problem}); left out (the next run recomputes it)",
          file=sys.stderr)
    return False


def _saved_expectations(saved: dict[str, Any], spec: dict[str, Any]
                        ) -> dict[str, dict[str, Any]]:
    """{cell id: what its record must say} from grid.json; folders written before
    grid.json held that: the spec's task and its default metric."""
    from harness.cells.record import default_metric

    kept = saved.get("expect")
    if isinstance(kept, dict):
        return {str(c): dict(kept.get(c) or {}) for c in saved["cells"]}
    task = (spec.get("task") or {}).get("name")
    loose = {"task": task, "metric": default_metric(str(task)) if task else None}
    return {str(c): dict(loose) for c in saved["cells"]}


def _saved_grid(results_dir: Path) -> dict[str, Any] | None:
    return read_grid(results_dir)


def _validated(spec: dict[str, Any], path: Path) -> Any:
    from harness.spec import SpecError, validate_spec
    from harness.spec.loader import load_plugins_of

    try:
        load_plugins_of(spec, path)
        return validate_spec(spec, str(path))
    except SpecError as exc:
        raise ReportError(exc.lines[0]) from None


def _grid_ids(spec: Any, data_dir: str | None, results_dir: Path) -> dict[str, dict[str, Any]]:
    """{cell id: what its record must say} of ``spec``'s full grid with the data as found
    now (harness.cells.record.expectation)."""
    from harness.cells.data import CellData
    from harness.cells.grid import expand
    from harness.cells.record import default_metric, expectation
    from harness.errors import DataError

    try:
        cells = expand(spec, None, CellData.for_spec(spec, data_dir))
        metric = default_metric(spec.task.name)
        return {c.cell_id: expectation(c.config, metric) for c in cells}
    except DataError as exc:
        raise ReportError(f"{exc} (the cell ids include the data's hashes: pass --data-dir, "
                          f"or report the results folder {results_dir}, which knows the "
                          "data of its last run)") from None


def _read_yaml(path: Path) -> dict[str, Any]:
    from harness.yamlio import YamlFileError, read_yaml_file

    try:
        data = read_yaml_file(path, "spec file")
    except YamlFileError as exc:
        raise ReportError(str(exc)) from None
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a mapping")
    return data


def _read_records(results_dir: Path, source: Path) -> list[dict[str, Any]]:
    entries = read_all_records(results_dir)
    if not entries:
        spec = "SPEC" if source.is_dir() else source
        raise ReportError(f"no results in {results_dir}: run `harness run {spec}` first")
    records = []
    for path, record, problem in entries:
        if record is None:
            print(f"warning: {path}: {problem}; left out (the next run recomputes it)",
                  file=sys.stderr)
        else:
            records.append(record)
    return records


def _result_set(
    spec: dict[str, Any], records: list[dict[str, Any]], results_dir: Path
) -> ResultSet:
    task = str(spec.get("task", {}).get("name") or records[0].get("task", "?"))
    declared, higher = _task_metrics(task)
    seen = [m for r in records for m in r.get("metrics", {})]
    metrics = tuple(dict.fromkeys([*declared, *seen]))
    if not metrics:
        raise ReportError(f"{results_dir}: no metrics in the task or the cell records")
    labels = [str(m.get("label") or m["name"]) for m in spec.get("methods", [])]
    labels += [record_label(r) for r in records]
    sizes = {int(s) for s in spec.get("sizes", [])} | {int(r["size"]) for r in records}
    return ResultSet(
        spec=spec,
        records=records,
        results_dir=results_dir,
        task=task,
        metric=str(spec.get("metric") or metrics[0]),
        metrics=metrics,
        higher_is_better=higher,
        labels=tuple(dict.fromkeys(labels)),
        sizes=tuple(sorted(sizes)),
    )


def _task_metrics(task: str) -> tuple[tuple[str, ...], dict[str, bool]]:
    """The task's declared metrics and directions; none if the task is not registered."""
    from harness.registry import TASKS

    if task not in TASKS:
        return (), {}
    params = TASKS.config(task)
    return tuple(params.metrics), dict(params.higher_is_better)
