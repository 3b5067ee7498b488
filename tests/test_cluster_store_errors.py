"""The store's bad inputs are one line each, on a real PostgreSQL: a server that cancels
statements (``?options=-c statement_timeout=1``), ``harness worker`` arguments out of
range (refused before the store is touched), and a relative ``--data-dir`` at enqueue
(resolved by the enqueuer, not by each worker in its own folder)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from clusterkit import db, postgres, store, write_spec  # noqa: F401 - fixtures

pytestmark = pytest.mark.cluster
HARNESS = [sys.executable, "-m", "harness.cli"]


def harness(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*HARNESS, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ))


def tables(url: str) -> set[str]:
    with db(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE "
                            "'harness_%'").fetchall()
    return {r[0] for r in rows}


def test_a_statement_timeout_in_the_url_is_one_line_with_a_hint(tmp_path, store) -> None:
    spec = write_spec(tmp_path, "timeout", sizes=[2], seeds=[0], epochs=10, runs=2)
    url = store + "?options=-c%20statement_timeout%3D1"
    done = harness("run", str(spec), "--store", url, cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "QueryCanceled" in lines[0], done.stderr
    assert "statement_timeout" in lines[0] and "Traceback" not in done.stderr


@pytest.mark.parametrize("args, message", [
    (["--threads", "-3"], "--threads -3: must be at least 1"),
    (["--max-cells", "0"], "--max-cells 0: must be at least 1"),
    (["--poll", "0"], "--poll 0.0: must be a positive number of seconds"),
])
def test_worker_arguments_out_of_range_are_refused_before_the_store(tmp_path, store, args,
                                                                    message) -> None:
    done = harness("worker", "--store", store, "--until-empty", *args, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: {message}"
    assert tables(store) == set()  # not even connected: nothing made, claimed or failed


def test_a_relative_data_dir_at_enqueue_is_resolved_by_the_enqueuer(tmp_path, store
                                                                    ) -> None:
    spec = write_spec(tmp_path, "datadir", sizes=[2], seeds=[0], epochs=10, runs=2)
    (tmp_path / "mydata").mkdir()
    done = harness("run", str(spec), "--store", store, "--enqueue", "--data-dir", "mydata",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with db(store) as conn:
        [(saved,)] = conn.execute("SELECT data_dir FROM harness_specs").fetchall()
    assert saved == str((tmp_path / "mydata").resolve())
