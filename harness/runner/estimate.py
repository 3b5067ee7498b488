"""How long cells will take, from the records of earlier runs of the same task (for
``harness run --dry-run``). A cell's time is the median seconds per replicate of the
closest earlier cells, times its replicates: first those with the same settings (all
but the seed), else the same method and size, else the same size, else the task's
cells. Records come from every results folder under the spec's output_dir; the times
are of the machine and threads those runs had, and tuning is not included. A cell
trained in a group (``timings.group_cells``) counts its share of the group's time (its
``train_s`` runs from the group's start)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

from harness.cells.folder import CELLS_DIR
from harness.cells.grid import Cell, config_id

BASES = ("same settings", "same method and size", "same size", "same task")


def _keys(config: dict[str, Any]) -> tuple[str, ...]:
    """The matching keys of a config, from the closest to the loosest (BASES)."""
    settings = {k: v for k, v in config.items() if k not in ("seed", "runs")}
    task = config["task"]["name"]
    return (config_id(settings), f"{task}/{config['method']['name']}/{config['size']}",
            f"{task}/{config['size']}", task)


@dataclass(frozen=True)
class Estimate:
    """Seconds per pending cell (None: nothing to go by) and how each was found."""

    seconds: dict[str, float | None]
    bases: dict[str, str]
    records: int  # earlier ok records read

    @property
    def total(self) -> float:
        return sum(s for s in self.seconds.values() if s is not None)

    @property
    def unknown(self) -> int:
        return sum(s is None for s in self.seconds.values())

    def wall(self, workers: int) -> float:
        """The longest worker's load when the largest cells go first (as the runner
        schedules them)."""
        loads = [0.0] * max(1, workers)
        for s in sorted((s for s in self.seconds.values() if s is not None), reverse=True):
            loads[loads.index(min(loads))] += s
        return max(loads)


def earlier_records(output_root: Path, task: str) -> Iterable[dict[str, Any]]:
    """Ok records of ``task`` in every results folder under ``output_root``."""
    for path in sorted(output_root.glob(f"*/{CELLS_DIR}/*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if (isinstance(record, dict) and record.get("task") == task
                and record.get("status") == "ok" and record.get("config")
                and (record.get("timings") or {}).get("train_s") is not None):
            yield record


def estimate(cells: list[Cell], history: Iterable[dict[str, Any]]) -> Estimate:
    """The estimate of ``cells`` from ``history`` (records of the same task)."""
    per_run: dict[str, list[float]] = {}
    count = 0
    for record in history:
        count += 1
        timings = record["timings"]
        share = max(int(timings.get("group_cells") or 1), 1)  # a group's cells: its share
        seconds = float(timings["train_s"]) / share / max(int(record.get("runs") or 1), 1)
        for key in _keys(record["config"]):
            per_run.setdefault(key, []).append(seconds)
    seconds: dict[str, float | None] = {}
    bases: dict[str, str] = {}
    for cell in cells:
        for key, basis in zip(_keys(dict(cell.config)), BASES, strict=True):
            if key in per_run:
                seconds[cell.cell_id] = median(per_run[key]) * cell.runs
                bases[cell.cell_id] = basis
                break
        else:
            seconds[cell.cell_id] = None
    return Estimate(seconds, bases, count)
