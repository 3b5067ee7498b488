"""A value computed once per key and shared through a folder, safe under concurrent
processes: the first process to need it computes it while holding an exclusive lock on
``<folder>/<key>.lock``; the others wait on that lock and then load what it published.

The value is published atomically (written to a temp file in the same folder, then
``os.replace``), so a reader sees either nothing or the whole value, never a torn file.
The lock is an OS lock (``fcntl.flock``), released by the kernel when its holder exits,
however it exits: a process killed with SIGKILL mid-computation leaves no stale lock and
no partial value, and the next process that needs the value computes it again.

Used for results that many cells share and that are expensive, deterministic functions of
their key (the GLUE task's adapted MLM head). The key must fingerprint every input that
changes the value: a hit is trusted without recomputing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from harness.atomic import FILE_MODE

T = TypeVar("T")


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """The value, whether this process computed it, and how long it waited for the lock
    (seconds; another process was computing it)."""

    value: T
    computed: bool
    waited_s: float


@contextlib.contextmanager
def exclusive(lock_path: Path) -> Iterator[float]:
    """Hold ``lock_path``'s exclusive lock (blocking); yields the seconds spent waiting."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        start = time.perf_counter()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield time.perf_counter() - start
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def publish(path: Path, write: Callable[[Path], None]) -> None:
    """Let ``write`` fill a temp file next to ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, FILE_MODE)  # as open() would make it (mkstemp makes 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def computed_once(path: Path, compute: Callable[[], T], save: Callable[[T, Path], None],
                  load: Callable[[Path], T]) -> Outcome[T]:
    """The value stored at ``path`` (a file named by the key's fingerprint): loaded when
    present, else computed by ``compute`` under the lock ``<path>.lock``, saved by ``save``
    (atomically) and returned. Concurrent callers with the same path compute it once."""
    if path.is_file():
        return Outcome(load(path), False, 0.0)
    with exclusive(path.with_name(path.name + ".lock")) as waited:
        if path.is_file():  # published while we waited
            return Outcome(load(path), False, waited)
        value = compute()
        publish(path, lambda tmp: save(value, tmp))
        return Outcome(value, True, waited)
