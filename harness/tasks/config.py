"""Settings shared by every task's params model (light: no torch import)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from harness.spec.strict import StrictModel


@dataclass(frozen=True)
class SizeLimit:
    """The most a cell's ``size`` can be with one data file: ``count`` ``unit`` (e.g.
    32928 "training tokens") in ``file``."""

    count: int
    unit: str
    file: str


class TaskParams(StrictModel):
    """Base of all task params. Subclasses declare the metrics they report.

    ``metrics`` lists the metric names the task returns, the first being the default;
    ``higher_is_better`` says which way each one improves (used by reports and tuning);
    ``operational`` names fields that change how a cell runs but not its numbers (say,
    checkpointing): they are left out of the cell id, so switching them keeps old results.
    ``method_identity`` names fields kept in one method's cell ids at their defaults.

    A task that reads files declares them with ``data_files`` (their content hashes go
    into the cell id and the record) and validates them with ``check_data`` (run before
    any training, and by ``harness validate --data-dir``). A task whose sizes count
    something in its files (tokens, examples) says how many there are with
    ``size_limits``: a larger size is an error before any training, never a silent cap.
    """

    metrics: ClassVar[tuple[str, ...]] = ()
    higher_is_better: ClassVar[dict[str, bool]] = {}
    operational: ClassVar[frozenset[str]] = frozenset()
    # {method name: fields} hashed into that method's cell ids even at their defaults: a
    # task's own form of a method whose default changed what the method computes, so
    # that results made under the earlier default are not taken for new ones.
    method_identity: ClassVar[dict[str, tuple[str, ...]]] = {}
    # Whether replicate i of a cell sees the same data and seeds under every method, so
    # that the leaderboard's intervals may pair replicates (else they pair seeds).
    paired_replicates: ClassVar[bool] = False
    # torch threads a cell of this task runs with by default (None: cores / workers);
    # small, launch-bound tasks are fastest on one (benchmarks/threads.py).
    default_threads: ClassVar[int | None] = None
    # Tiny settings for the contract tests (harness.testing.contract): a cell in seconds.
    contract_params: ClassVar[dict[str, Any]] = {}
    contract_size: ClassVar[int] = 8
    contract_runs: ClassVar[int] = 2

    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="where tensors live; auto = cuda when available, else cpu"
    )

    def required_modules(self) -> dict[str, tuple[str, ...]]:
        """{extra: modules} this task needs beyond the core install (e.g. {"glue":
        ("transformers",)}); ``harness validate`` and ``harness run`` check they import
        before anything is computed, and name the ``pip install`` that brings them."""
        return {}

    def expected_metrics(self) -> tuple[str, ...]:
        """The metrics a cell with these params returns (every one of them, checked when
        the cell ends); by default all of ``metrics``. A task whose metrics depend on its
        params (which GLUE tasks, whether a stream evaluation runs) narrows it."""
        return tuple(type(self).metrics)

    def data_files(self, root: Path | None) -> dict[str, Path | str]:
        """The files a cell reads, by role ({} = none), under the data folder ``root``
        (None when no folder was given). A str value names a remote source (a hub
        dataset) recorded by name. Raise ``harness.errors.DataMissingError`` (one line:
        what, where looked, how to get it) when a required file is absent."""
        return {}

    def size_limits(self, files: dict[str, Path | str]) -> list[SizeLimit]:
        """How large a size the data ``files`` allow, one limit per file that bounds it
        ([] = unbounded: the task generates its data, as the logistic and grid RL tasks
        do). Called after ``check_data``."""
        return []

    def check_data(self, files: dict[str, Path | str], sizes: Sequence[int]) -> None:
        """Validate ``files`` (from ``data_files``) for cells at ``sizes`` before any
        compute: readable, non-empty UTF-8, long enough for the batch and evaluation
        geometry. Raise ``harness.errors.DataError`` naming the file and the problem."""
