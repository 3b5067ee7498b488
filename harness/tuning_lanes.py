"""Tuning in lanes: a sweep's Optuna studies tuned by several processes at once.

Batched tuning (``harness.tuning``) trains each round's trials of every study as one
group, in one process; on a machine with more cores than that process uses, the others
idle for the whole tuning (a logistic spec's tuning is most of its time). Lanes split
the studies by dataset size, since the studies of one size share a group program: this
process and ``lanes - 1`` helper processes each take the next size not yet taken,
largest first, and tune its studies to the end, rounds batched as before. A study is
tuned whole in one lane, its sampler seeded there as it would be anywhere, and its
trials are batched with the same trials, so its trials, their values and the chosen
lambda are those of the one-process tuning.

Helpers are "spawn" processes that ignore SIGINT (this process decides), exit when this
process is gone (the worker pool's watchdog) and are terminated when it stops or fails;
a trial a helper leaves RUNNING is failed and retried by the next run (as any killed
tuner's). A size whose studies a helper did not report (it died) is tuned by this
process at the end, only what is missing of it (finished trials are in the storage).
Helpers get the spec as data and validate it again (a spec's model is not picklable),
loading its plugins first.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from harness.cells.grid import Cell
from harness.runner.execute import LambdaChoice, one_line
from harness.runner.pool import _watch_parent
from harness.tuning import OnTrial, tune_lambdas

Key = tuple[str, int]
HELPER_GRACE_S = 2.0


def sizes_largest_first(cells: list[Cell]) -> list[list[Cell]]:
    """``cells`` grouped by dataset size, the largest size first (it takes longest)."""
    sizes: dict[int, list[Cell]] = {}
    for cell in cells:
        sizes.setdefault(cell.size, []).append(cell)
    return [sizes[size] for size in sorted(sizes, reverse=True)]


def tune_in_lanes(spec: Any, cells: list[Cell], storage: str, data_dir: str | None, *,
                  lanes: int, threads: int | None = None,
                  on_trial: OnTrial | None = None) -> dict[Key, LambdaChoice]:
    """The tuned lambda of each (label, size) of ``cells`` (as ``tune_lambdas``, batched),
    the sizes' studies tuned by up to ``lanes`` processes at once (see the module
    docstring)."""
    parts = sizes_largest_first(cells)
    helpers_wanted = min(lanes, len(parts)) - 1
    if helpers_wanted < 1:
        return tune_lambdas(spec, cells, storage, data_dir, threads=threads,
                            on_trial=on_trial)
    if threads is None:  # the helpers compute with this process's threads (the same bits)
        import torch

        threads = torch.get_num_threads()
    _make_tables(storage)  # once, here: processes creating them at once would collide
    ctx = multiprocessing.get_context("spawn")
    taken = ctx.Value("i", 0)
    payload = _Payload(spec.model_dump(mode="json", by_alias=True),
                       getattr(spec, "_spec_file", None),
                       [[_portable(c) for c in part] for part in parts],
                       storage, data_dir, threads)
    counts: dict[object, tuple[int, int]] = {}

    def tell(lane: object, done: int, target: int) -> None:
        counts[lane] = (done, target)
        if on_trial is not None:
            on_trial(sum(d for d, _ in counts.values()), sum(t for _, t in counts.values()))

    helpers: list[_Helper] = []
    choices: dict[Key, LambdaChoice] = {}
    try:
        for _ in range(helpers_wanted):
            mine, theirs = ctx.Pipe()
            process = ctx.Process(target=_helper_main, args=(theirs, os.getpid(), taken,
                                                             payload), daemon=True)
            process.start()
            theirs.close()
            helpers.append(_Helper(process, mine))

        def heard(lane: object) -> OnTrial:
            """This process's trial count for ``lane``, and what the helpers sent."""
            def on(done: int, target: int) -> None:
                tell(lane, done, target)
                for helper in helpers:
                    _drain(helper, choices, tell)
            return on

        while (index := _take(taken)) < len(parts):
            choices.update(tune_lambdas(spec, parts[index], storage, data_dir,
                                        threads=threads, on_trial=heard(("main", index))))
        for helper in helpers:
            while helper.conn is not None:
                wait([helper.conn])
                _drain(helper, choices, tell)
        for part in parts:  # a helper died: its size is tuned here, what is missing of it
            if any((cell.label, cell.size) not in choices for cell in part):
                choices.update(tune_lambdas(spec, part, storage, data_dir, threads=threads))
    finally:
        for helper in helpers:
            helper.stop()
    return choices


@dataclass(frozen=True)
class _Payload:
    """What a helper needs: the spec as data (and its file, for relative paths), the
    parts' cells as plain data, the storage, data folder and threads."""

    spec: dict[str, Any]
    spec_file: Path | None
    parts: list[list[dict[str, Any]]]
    storage: str
    data_dir: str | None
    threads: int | None


def _portable(cell: Cell) -> dict[str, Any]:
    """A cell as plain data (its method entry is a pydantic model of the spec's own,
    unpicklable, class: the helper finds it again by index)."""
    return {"index": cell.index, "size": cell.size, "seed": cell.seed,
            "config": dict(cell.config), "cell_id": cell.cell_id, "data": dict(cell.data)}


def _take(taken: Any) -> int:
    """The next part's index (shared by the lanes: each part is taken once)."""
    with taken.get_lock():
        index = int(taken.value)
        taken.value = index + 1
    return index


class _Helper:
    """A helper process and its pipe (None once the helper has ended or died)."""

    def __init__(self, process: Any, conn: Connection) -> None:
        self.process: Any = process
        self.conn: Connection | None = conn

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(HELPER_GRACE_S)
            if self.process.is_alive():
                self.process.kill()
        self.process.join()
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _drain(helper: _Helper, choices: dict[Key, LambdaChoice],
           tell: Callable[[object, int, int], None]) -> None:
    """Read what ``helper`` has sent so far; its pipe is closed when it ends or dies."""
    while helper.conn is not None and helper.conn.poll():
        try:
            kind, index, value = helper.conn.recv()
        except (EOFError, OSError):
            helper.conn.close()
            helper.conn = None
            return
        if kind == "trial":
            tell((id(helper), index), *value)
        elif kind == "choices":
            choices.update(value)
        elif kind == "failed":  # the helper could not tune this part at all
            for cell in value["cells"]:
                choices[(str(cell["config"]["method"]["label"]), cell["size"])] = (
                    LambdaChoice(None, "tuned", error=value["error"]))
        elif kind == "end":
            helper.conn.close()
            helper.conn = None


def _helper_main(conn: Connection, parent: int, taken: Any, payload: _Payload) -> None:
    """A helper's life: take parts until none is left, tune each, send the choices."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    spec = None
    error: str | None = None
    try:
        spec = _spec_again(payload)
    except Exception as exc:  # noqa: BLE001 - every part it takes fails with it
        error = f"tuning helper: {one_line(f'{type(exc).__name__}: {exc}')}"
    while (index := _take(taken)) < len(payload.parts):
        part = payload.parts[index]
        if spec is None:
            conn.send(("failed", index, {"cells": part, "error": error}))
            continue
        cells = [Cell(index=c["index"], entry=spec.methods[c["index"]], size=c["size"],
                      seed=c["seed"], config=c["config"], cell_id=c["cell_id"],
                      data=c["data"]) for c in part]
        choices = tune_lambdas(spec, cells, payload.storage, payload.data_dir,
                               threads=payload.threads,
                               on_trial=lambda done, target, i=index: conn.send(
                                   ("trial", i, (done, target))))
        conn.send(("choices", index, choices))
    conn.send(("end", -1, None))
    conn.close()


def _make_tables(storage: str) -> None:
    """Create Optuna's tables in ``storage`` if it has none yet."""
    import optuna

    from harness.tuning import rdb_storage

    optuna.storages.get_storage(rdb_storage(storage))


def _spec_again(payload: _Payload) -> Any:
    from harness.spec.loader import load_plugins_of, validate_spec

    data = dict(payload.spec)
    load_plugins_of(data, payload.spec_file)
    spec = validate_spec(data, str(payload.spec_file or "<spec>"))
    if payload.spec_file is not None:
        spec._spec_file = payload.spec_file
    return spec
