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
_TOLD: list[int] = []  # the stop signals received by the handler installed now


def raise_if_told() -> None:
    """Raise KeyboardInterrupt if a stop signal came: called by the scheduler at each
    turn, because Python drops an exception raised inside a garbage collector's callback
    ("Exception ignored in ..."), and the handler's may land there."""
    if _TOLD:
        raise KeyboardInterrupt


@contextmanager
def stop_on_signals(kill_children: Callable[[], None]) -> Iterator[None]:
    """Install the two-step handler for the duration (main thread only; elsewhere, e.g. a
    test calling the runner from a thread, the default handlers stay)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    told = _TOLD
    told.clear()

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
        told.clear()
