"""Helpers for tests that drive real `harness` processes: spawn, wait for a journal event,
signal, and list the processes a run left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness.testing.processes import live_processes

HARNESS = [sys.executable, "-m", "harness.cli"]


def spawn(args: list[str], cwd: Path, env: dict[str, str] | None = None,
          log: Path | None = None) -> subprocess.Popen:
    """`harness ARGS` in its own session (so its process group is its pid)."""
    out = open(log, "wb") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen([*HARNESS, *args], cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})}, start_new_session=True)


def journal(results: Path) -> list[dict[str, Any]]:
    path = results / "journal.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for(predicate, timeout: float = 120.0, proc: subprocess.Popen | None = None,
             what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run ended (rc {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def events(results: Path, kind: str) -> list[dict[str, Any]]:
    return [e for e in journal(results) if e["event"] == kind]


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid``."""
    return live_processes(group=pgid)


def wait_gone(pgid: int, timeout: float = 5.0) -> list[int]:
    """Wait until no process of the group is left; return those still there."""
    deadline = time.monotonic() + timeout
    left = group_members(pgid)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = group_members(pgid)
    return left
