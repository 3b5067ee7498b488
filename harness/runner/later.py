"""MLflow logging in a thread of its own, so that a process that computes cells itself
(``harness run`` without worker processes, or with helpers) does not wait for it.

A cell's record is on disk before it is queued here; the thread logs it, writes the run
id into it and only then releases the cell's claim, so no other run logs it meanwhile
(a record without a run id is logged on the next run, as after any interruption).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any


class LaterTracking:
    """A queue of (record, claim) handled by ``handle`` in one daemon thread."""

    def __init__(self, handle: Callable[[dict[str, Any], Any], None]) -> None:
        self._handle = handle
        self._queue: queue.Queue[tuple[dict[str, Any], Any] | None] = queue.Queue()
        self._abandon = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="harness-tracking",
                                        daemon=True)
        self._thread.start()

    def put(self, record: dict[str, Any], claim: Any) -> None:
        self._queue.put((record, claim))

    def _loop(self) -> None:
        while (item := self._queue.get()) is not None:
            if not self._abandon.is_set():
                self._handle(*item)

    def stop(self, drain: bool = True) -> None:
        """Wait for the queued records to be logged (``drain``), or skip those not yet
        begun (an interrupt: they are logged on the next run)."""
        if not drain:
            self._abandon.set()
        self._queue.put(None)
        self._thread.join()
