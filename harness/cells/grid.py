"""Expand a spec into cells (method x size x seed) with content-addressed ids.

A cell's id hashes the resolved configuration that determines its numbers, so a changed
setting gives a new id (recomputed on resume) while reformatting the YAML does not. Task
and method params still at their defaults are left out of the hash, so a release that adds
a new setting (with a default that keeps the old behaviour) keeps earlier results valid.
The sha256 of every data file the task reads is hashed too (``harness.cells.data``):
changed data means new cells; tasks that read no files keep the ids they always had.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.cells.data import CellData

ONLY_KEYS = ("method", "size", "seed")


class GridError(ValueError):
    """A bad ``--only`` filter; the message is one line meant for the user."""


@dataclass(frozen=True)
class Cell:
    """One unit of work: a method entry at one dataset size and seed (``runs`` batched)."""

    index: int  # position of the method entry in spec.methods
    entry: Any  # the method entry (a pydantic model; never sent to worker processes)
    size: int
    seed: int
    config: Mapping[str, Any]
    cell_id: str
    data: Mapping[str, Any] = field(default_factory=dict)  # {role: {path, size, sha256}}

    @property
    def label(self) -> str:
        return str(self.config["method"]["label"])

    @property
    def method(self) -> str:
        return str(self.config["method"]["name"])

    @property
    def runs(self) -> int:
        return int(self.config["runs"])

    @property
    def tuned(self) -> bool:
        return bool(self.entry.tuned)

    def describe(self) -> str:
        return f"{self.label} size={self.size} seed={self.seed}"


def cell_config(spec: Any, entry: Any, size: int, seed: int, *, identity: bool = False,
                data: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The resolved configuration of one cell: everything that changes its numbers (task
    params include the entry's per-method ``task_params`` overrides). ``identity``: the
    form that is hashed into the cell id (params at their defaults and the task's
    ``operational`` fields left out, but its ``method_identity`` fields for this method
    kept; the data files' hashes ``data`` added)."""
    from harness.spec.models import task_params_for

    dumped = entry.model_dump(mode="json", by_alias=True)
    params = entry.params.model_dump(mode="json", by_alias=True, exclude_defaults=identity)
    resolved = task_params_for(spec, entry)
    task_params = resolved.model_dump(
        mode="json", by_alias=True, exclude_defaults=identity,
        exclude=set(type(resolved).operational) if identity else None)
    if identity:
        kept = type(resolved).method_identity.get(entry.name, ())
        task_params.update(resolved.model_dump(mode="json", by_alias=True, include=set(kept)))
    config: dict[str, Any] = {
        "task": {"name": spec.task.name, "params": task_params},
        "method": {
            "name": entry.name,
            "label": entry.display,
            "lambda": dumped.get("lambda"),
            "params": params,
        },
        "size": size,
        "seed": seed,
        "runs": spec.runs,
    }
    if identity and data:
        config["data"] = dict(data)
    if entry.tuned:
        # The metric is included because the tuned lambda optimises it.
        config["tuning"] = {**spec.tuning.model_dump(mode="json", by_alias=True),
                            "metric": spec.metric}
    return config


def config_id(config: Mapping[str, Any]) -> str:
    """First 16 hex chars of sha256 over the canonical JSON of ``config``."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def expand(spec: Any, only: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
           data: CellData | None = None) -> list[Cell]:
    """All cells of ``spec`` that pass the ``only`` filters, by method, then size, then seed.

    ``only`` maps method/size/seed to one value or a list (OR within a key, AND across keys);
    a (key, value) pair list as given by repeated ``--only`` flags is accepted too.
    ``data``: the sweep's data (default: the spec's data_dir, else $HARNESS_DATA_DIR);
    raises DataError when a task's data files cannot be found.
    """
    from harness.spec.models import task_params_for

    filters = normalize_only(only)
    _check_values(spec, filters)
    data = data if data is not None else CellData.for_spec(spec)
    cells = []
    for index, entry in enumerate(spec.methods):
        if "method" in filters and not filters["method"] & {entry.name, entry.display}:
            continue
        params = task_params_for(spec, entry)
        hashes, files = data.identity(params), data.record(params)
        for size in spec.sizes:
            if "size" in filters and str(size) not in filters["size"]:
                continue
            for seed in spec.seeds:
                if "seed" in filters and str(seed) not in filters["seed"]:
                    continue
                config = cell_config(spec, entry, size, seed)
                identity = cell_config(spec, entry, size, seed, identity=True, data=hashes)
                cells.append(Cell(index, entry, size, seed, config, config_id(identity),
                                  files))
    return cells


def normalize_only(
    only: Mapping[str, Any] | Iterable[tuple[str, Any]] | None,
) -> dict[str, set[str]]:
    """{key: set of values as strings}; an unknown key is a GridError."""
    pairs: list[tuple[str, Any]] = []
    items = only.items() if isinstance(only, Mapping) else (only or [])
    for key, value in items:
        values = value if isinstance(value, list | tuple | set) else [value]
        pairs.extend((key, v) for v in values)
    filters: dict[str, set[str]] = {}
    for key, value in pairs:
        if key not in ONLY_KEYS:
            raise GridError(f"--only {key}={value}: unknown key {key!r}; use one of "
                            f"{', '.join(ONLY_KEYS)}")
        filters.setdefault(key, set()).add(str(value))
    return filters


def _check_values(spec: Any, filters: dict[str, set[str]]) -> None:
    """Reject a filter value that matches nothing in the spec (almost always a typo)."""
    known = {
        "method": sorted({m.name for m in spec.methods} | {m.display for m in spec.methods}),
        "size": [str(s) for s in spec.sizes],
        "seed": [str(s) for s in spec.seeds],
    }
    for key, values in filters.items():
        for value in sorted(values - set(known[key])):
            raise GridError(f"--only {key}={value}: no such {key} in spec '{spec.name}'; "
                            f"known: {', '.join(known[key])}")
