"""A daemon thread that renews a store's claims every quarter of their timeout, so that a
live owner's claims never look abandoned (file claims and the PostgreSQL store alike)."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Heartbeat:
    """Calls ``beat`` every ``max(0.1, timeout / 4)`` seconds from first ``start`` until
    ``stop``; ``beat`` handles its own errors (a failed beat is retried at the next)."""

    def __init__(self, beat: Callable[[], None], timeout: float, name: str) -> None:
        self._beat, self._interval, self._name = beat, max(0.1, timeout / 4), name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.wait(self._interval):
                self._beat()

        self._thread = threading.Thread(target=loop, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, join_s: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None and join_s is not None:
            self._thread.join(join_s)
