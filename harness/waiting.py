"""How OpenMP's idle threads wait, chosen before torch loads (``harness`` commands only).

torch's CPU build runs its intra-op threads on GNU OpenMP, whose idle threads spin for
about 300,000 iterations before they sleep. Beside another busy process that spinning
costs a multi-threaded cell up to 10x (a thread that spins holds its core from the
other process, and the scheduler then makes it wait for that core at each parallel
region). ``GOMP_SPINCOUNT`` = ``SPIN_COUNT`` keeps the spin for the short gaps between
operations (a quiet machine loses nothing) and sleeps through longer ones. How threads
wait never changes a number: only the thread count does. A user's own
``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` is kept.
"""

from __future__ import annotations

import os
import sys

SPIN_COUNT = "10000"


def choose_waiting() -> bool:
    """Set ``GOMP_SPINCOUNT`` unless the user chose a wait policy or torch is loaded
    already (libgomp reads it once, when it loads); True when it was set here."""
    if "torch" in sys.modules or "OMP_WAIT_POLICY" in os.environ \
            or "GOMP_SPINCOUNT" in os.environ:
        return False
    os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
    return True
