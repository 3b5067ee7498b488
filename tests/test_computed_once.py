"""harness.computed_once with real processes: concurrent callers compute a value once and
all get it; a caller killed with SIGKILL while computing leaves no lock and no partial
file, and the next caller computes the value."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.computed_once import computed_once, publish

WORKER = r"""
import json, sys, time
from pathlib import Path
from harness.computed_once import computed_once

path, log, delay = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])

def compute():
    with log.open("a") as f:
        f.write("start\n"); f.flush()
    time.sleep(delay)
    return {"value": 42}

out = computed_once(path, compute, lambda v, p: p.write_text(json.dumps(v)),
                    lambda p: json.loads(p.read_text()))
print(json.dumps({"value": out.value, "computed": out.computed}))
"""


def spawn(tmp_path: Path, delay: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path / "v.json"),
                             str(tmp_path / "log"), str(delay)],
                            stdout=subprocess.PIPE, text=True)


def wait_for_start(log: Path, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and log.read_text().count("start") >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"no {count} start(s) in {log}")


def test_concurrent_processes_compute_once(tmp_path):
    procs = [spawn(tmp_path, 1.5) for _ in range(3)]
    outs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert [o["value"] for o in outs] == [{"value": 42}] * 3
    assert sorted(o["computed"] for o in outs) == [False, False, True]
    assert (tmp_path / "log").read_text() == "start\n"  # one computation
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log", "v.json", "v.json.lock"]


def test_a_killed_computation_leaves_nothing_and_is_redone(tmp_path):
    first = spawn(tmp_path, 600.0)
    wait_for_start(tmp_path / "log", 1)
    waiter = spawn(tmp_path, 0.1)  # blocks on the lock the first one holds
    time.sleep(0.5)
    assert waiter.poll() is None
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    out = json.loads(waiter.communicate(timeout=120)[0])
    assert out == {"value": {"value": 42}, "computed": True}
    assert (tmp_path / "log").read_text() == "start\nstart\n"
    assert not list(tmp_path.glob(".*.tmp"))


def test_in_process_hit_and_failed_publish(tmp_path):
    path = tmp_path / "x.txt"
    calls = []

    def compute() -> str:
        calls.append(1)
        return "hello"

    def save(value: str, p: Path) -> None:
        p.write_text(value)

    first = computed_once(path, compute, save, Path.read_text)
    second = computed_once(path, compute, save, Path.read_text)
    assert (first.value, first.computed, second.value, second.computed) == (
        "hello", True, "hello", False)
    assert len(calls) == 1

    def broken(value: str, p: Path) -> None:
        p.write_text(value[:2])
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        publish(tmp_path / "y.txt", lambda p: broken("hello", p))
    assert not (tmp_path / "y.txt").exists() and not list(tmp_path.glob(".*.tmp"))
