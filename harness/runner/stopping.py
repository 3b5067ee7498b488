"""Stopping a run when told: the first Ctrl-C (SIGINT) or SIGTERM raises KeyboardInterrupt
in the main thread, so the sweep stops its workers, keeps finished cells and checkpoints,
and releases its claims; a second one kills the workers and exits at once."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def stop_on_signals(kill_children: Callable[[], None]) -> Iterator[None]:
    """Install the two-step handler for the duration (main thread only; elsewhere, e.g. a
    test calling the runner from a thread, the default handlers stay)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    told: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        told.append(signum)
        if len(told) == 1:
            raise KeyboardInterrupt
        kill_children()
        print("stopped at once (second signal): finished cells are saved", file=sys.stderr)
        os._exit(128 + signum)

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
