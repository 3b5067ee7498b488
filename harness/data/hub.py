"""The Hugging Face hub as a fallback for data files that are not on disk.

Loaders first look for local files; only when those are absent do they ask the hub, via
``datasets.load_dataset`` (the optional ``datasets`` package, in the ``glue`` extra). What
the user is told when that fails must be true of their machine, so ``attempt`` reports
why the hub could not serve the data and ``advice`` says what would help:

- ``datasets`` is not installed: install it (and be online);
- ``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` is set: the fallback is off (``datasets``
  reads that switch when it is imported, so a load could still try the network); unset it
  and go online;
- huggingface.co does not answer (a 3 s connect; ``datasets`` itself would retry for
  about 25 s): go online;
- the hub answered but the load failed: its error, first line.
"""

from __future__ import annotations

import importlib.util
import os
import socket
from collections.abc import Callable
from importlib import metadata
from typing import TypeVar
from urllib.parse import urlparse

T = TypeVar("T")
OFFLINE_ENVS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


def datasets_installed() -> bool:
    """Whether the ``datasets`` distribution is installed and importable (a stray
    ``datasets/`` folder in the working directory does not count)."""
    try:
        metadata.version("datasets")
    except metadata.PackageNotFoundError:
        return False
    spec = importlib.util.find_spec("datasets")
    return spec is not None and spec.origin is not None


def offline_env() -> str | None:
    """The name of the offline switch that is set (HF_HUB_OFFLINE=1 ...), or None."""
    for name in OFFLINE_ENVS:
        if os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off"):
            return name
    return None


def reachable(timeout: float = 3.0) -> bool:
    """A quick TCP connect to the hub endpoint ($HF_ENDPOINT, else huggingface.co)."""
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    try:
        socket.create_connection((host or "huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def unavailable() -> str | None:
    """Why the hub cannot be asked at all (no package, an offline switch, no network), or
    None when a load is worth trying."""
    if not datasets_installed():
        return "the hub fallback needs the `datasets` package, which is not installed"
    switch = offline_env()
    if switch is not None:
        return f"hub fallback off: {switch} is set"
    if not reachable():
        return "hub fallback: huggingface.co unreachable (offline)"
    return None


def attempt(fetch: Callable[[], T]) -> tuple[T | None, str]:
    """(the fetched value, "") or (None, why the hub could not serve it)."""
    reason = unavailable()
    if reason is not None:
        return None, reason
    try:
        return fetch(), ""
    except Exception as err:  # noqa: BLE001 - any hub or cache error means "missing"
        first = str(err).splitlines()[0][:160] if str(err) else ""
        return None, f"hub fallback failed: {type(err).__name__}: {first}"


def advice(call: str, reason: str = "") -> str:
    """What would let ``call`` (e.g. "datasets.load_dataset('nyu-mll/glue', 'cola')")
    fetch the data on this machine, said truthfully (``reason``: from ``attempt``)."""
    if not datasets_installed():
        return f"`pip install datasets` and go online so {call} can fetch it"
    switch = offline_env()
    if switch is not None:
        return f"unset {switch} and go online so {call} can fetch it"
    if reason.startswith("hub fallback failed"):
        return f"fix what made {call} fail (the hub was reachable)"
    return f"go online so {call} can fetch it"
