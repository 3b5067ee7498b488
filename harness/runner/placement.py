"""Which GPUs each local worker process sees.

With several GPUs visible, ``harness run --workers N`` gives worker ``i`` its own
``CUDA_VISIBLE_DEVICES`` (``gpus`` devices each, ``resources.gpus`` of the spec, at least
one), so that N workers on an N-GPU machine use N devices instead of all landing on
``cuda:0``. More workers than devices share them round-robin (with a warning). With one
GPU or none, nothing is set (the process's own setting stays). On a cluster the Ray
executor reserves ``num_gpus`` per cell instead and Ray sets the variable.
"""

from __future__ import annotations

import math
import os

ENV = "CUDA_VISIBLE_DEVICES"


def visible_gpus() -> list[str]:
    """The GPUs this process may use: $CUDA_VISIBLE_DEVICES's entries when it is set,
    else torch's device count (0 on a CPU build)."""
    value = os.environ.get(ENV)
    if value is not None:
        entries = [d.strip() for d in value.split(",") if d.strip()]
        out = []
        for entry in entries:  # CUDA stops at the first invalid entry, e.g. -1
            if entry.startswith("-"):
                break
            out.append(entry)
        return out
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - no usable CUDA: no GPUs
        return []


def assign_gpus(workers: int, devices: list[str], per_worker: float = 1.0
                ) -> tuple[list[str | None], str | None]:
    """(one $CUDA_VISIBLE_DEVICES value per worker, or None to leave it; a warning or None).
    ``per_worker``: GPUs one worker's cells need (fractions and 0 count as one)."""
    if len(devices) <= 1 or workers < 1:
        return [None] * max(workers, 0), None
    each = max(1, math.ceil(per_worker))
    each = min(each, len(devices))
    out = []
    for i in range(workers):
        start = (i * each) % len(devices)
        picked = [devices[(start + k) % len(devices)] for k in range(each)]
        out.append(",".join(picked))
    warning = None
    if workers * each > len(devices):
        warning = (f"{workers} workers x {each} GPU(s) each is more than the {len(devices)} "
                   "visible; workers share GPUs round-robin")
    return out, warning
