"""Ray connection failures are one line within 30 s, and a run stopped while it connects
stops at once: a refused port, a host that does not resolve, a port that accepts and
never answers (Ray itself retries such addresses for minutes). A stale
``ray_current_cluster`` file (or $RAY_ADDRESS) never hijacks a run that starts its own
local instance."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from clusterkit import need_ray, write_spec
from servers import free_port

pytestmark = pytest.mark.cluster
HARNESS = [sys.executable, "-m", "harness.cli"]


def run(spec, cwd, *args: str, env: dict | None = None, timeout: float = 120
        ) -> tuple[subprocess.CompletedProcess, float]:
    clock = time.monotonic()
    done = subprocess.run([*HARNESS, "run", str(spec), "--executor", "ray", "--no-report",
                           *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    return done, time.monotonic() - clock


@pytest.fixture
def silent_port():
    """A port on 127.0.0.1 that accepts connections and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


@pytest.mark.parametrize("address, why", [
    ("127.0.0.1:{free}", "Connection refused"),
    ("no-such-host.invalid:6379", "cannot resolve no-such-host.invalid"),
    ("127.0.0.1:{silent}", "gave no answer as a Ray head"),
])
def test_an_address_without_a_ray_head_is_one_line_within_30_s(tmp_path, silent_port,
                                                                address, why) -> None:
    need_ray()
    spec = write_spec(tmp_path, "rayaddr", sizes=[2], seeds=[0], epochs=10, runs=2)
    address = address.format(free=free_port(), silent=silent_port)
    done, took = run(spec, tmp_path, "--address", address)
    assert done.returncode == 1
    assert took < 30
    lines = [x for x in done.stderr.splitlines() if x.strip()]
    assert lines == [f"error: cannot connect to the Ray cluster at {address}: " + lines[0]
                     .split(f"{address}: ", 1)[1]]
    assert why in lines[0] and "nothing was run" in lines[0]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "results" / "rayaddr" / "cells").exists() or not any(
        (tmp_path / "results" / "rayaddr" / "cells").iterdir())


def test_sigterm_while_connecting_stops_the_run_at_once(tmp_path, silent_port) -> None:
    need_ray()
    spec = write_spec(tmp_path, "rayterm", sizes=[2], seeds=[0], epochs=10, runs=2)
    proc = subprocess.Popen([*HARNESS, "run", str(spec), "--executor", "ray", "--address",
                             f"127.0.0.1:{silent_port}", "--no-report"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(4.0)  # ray imported, the address being probed
    clock = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - clock < 3.0
    assert "Traceback" not in err


def test_a_stale_local_ray_file_and_ray_address_do_not_hijack_a_local_run(tmp_path) -> None:
    need_ray()
    spec = write_spec(tmp_path, "raystale", sizes=[2], seeds=[0], epochs=10, runs=2)
    temp = Path(tempfile.mkdtemp(prefix="hr-", dir="/tmp"))  # Ray's socket paths are short
    try:
        (temp / "ray").mkdir()
        dead = f"127.0.0.1:{free_port()}"
        (temp / "ray" / "ray_current_cluster").write_text(dead + "\n")
        done, _ = run(spec, tmp_path, env={"RAY_TMPDIR": str(temp), "RAY_ADDRESS": dead},
                      timeout=300)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2 ok" in done.stdout
