"""A job handed to a worker that is still starting (the default workers' helpers) is run
and its outcome returned: the worker's 'ready' message on the job's pipe is not mistaken
for the job's end (a group's records were dropped that way); a job not yet begun can be
taken back, and then runs only where it was taken."""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path

from harness.runner.pool import WorkerPool


def pid_of_worker(job, progress):
    return {"job": job, "pid": os.getpid()}


def test_a_starting_worker_runs_the_job_it_was_handed():
    pool = WorkerPool(1, pid_of_worker, threads=None)
    pool.start()
    try:
        assert pool.ready == 0  # still importing
        pool.submit("single")
        outcomes, deadline = [], time.monotonic() + 120
        while not outcomes and time.monotonic() < deadline:
            outcomes += pool.wait(1.0)
        [outcome] = outcomes
        assert outcome.record["job"] == "single" and outcome.record["pid"] != os.getpid()
        assert pool.running == 0
    finally:
        pool.terminate()


def mark_job(job, progress):
    """Leave a file named by the job, holding the pid that ran it."""
    Path(job).write_text(str(os.getpid()), encoding="utf-8")
    return {"job": job, "pid": os.getpid()}


def test_a_job_taken_back_before_the_worker_begins_it_runs_only_where_it_was_taken(tmp_path):
    """The default workers' main process takes back a unit a starting helper has not
    begun: the helper, once ready, skips it (no file from it) and runs the next job it is
    handed; the taken-back job is the caller's to run."""
    pool = WorkerPool(1, mark_job, threads=None)
    pool.start(functools.partial(time.sleep, 3.0))  # ready only after 3 s
    first, second = str(tmp_path / "first"), str(tmp_path / "second")
    try:
        pool.submit(first)
        assert pool.running == 1
        assert pool.withdraw() == first
        assert pool.running == 0 and pool.withdraw() is None
        pool.submit(second)
        outcomes, deadline = [], time.monotonic() + 120
        while not outcomes and time.monotonic() < deadline:
            outcomes += pool.wait(1.0)
        [outcome] = outcomes
        assert outcome.record["job"] == second and outcome.record["pid"] != os.getpid()
        assert not Path(first).exists()  # the helper skipped the job taken back
        assert Path(second).read_text(encoding="utf-8") == str(outcome.record["pid"])
    finally:
        pool.terminate()


def test_a_job_the_worker_has_begun_is_not_taken_back(tmp_path):
    pool = WorkerPool(1, mark_job, threads=None)
    pool.start()
    job = str(tmp_path / "begun")
    try:
        deadline = time.monotonic() + 120
        while pool.ready == 0 and time.monotonic() < deadline:
            pool.wait(1.0)
        pool.submit(job)
        while not Path(job).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pool.withdraw() is None
        outcomes = []
        while not outcomes and time.monotonic() < deadline:
            outcomes += pool.wait(1.0)
        assert [o.record["job"] for o in outcomes] == [job]
    finally:
        pool.terminate()


def mark_then_sleep(job, progress):
    """Leave a file named by the job (its begin), then take ``seconds``."""
    path, seconds = job
    Path(path).write_text(str(os.getpid()), encoding="utf-8")
    time.sleep(seconds)
    return {"job": path}


def test_a_busy_worker_takes_its_next_job_in_advance_and_it_can_be_taken_back(tmp_path):
    """While the main process computes, a helper that has begun its unit is handed the
    next one in advance (it never idles waiting for the main process); a job so handed
    and not begun comes back to the caller, and the worker runs what it is handed next."""
    pool = WorkerPool(1, mark_then_sleep, threads=None)
    pool.start()
    running, ahead, then = (str(tmp_path / name) for name in ("running", "ahead", "then"))
    try:
        deadline = time.monotonic() + 120
        while pool.ready == 0 and time.monotonic() < deadline:
            pool.wait(1.0)
        assert pool.queueable == 0
        pool.submit((running, 3.0))
        while not Path(running).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pool.free == 0 and pool.queueable == 1
        pool.submit((ahead, 0.0), queue=True)
        assert pool.queueable == 0  # one job ahead at most
        assert pool.withdraw() == (ahead, 0.0)
        pool.submit((then, 0.0), queue=True)
        outcomes = []
        while len(outcomes) < 2 and time.monotonic() < deadline:
            outcomes += pool.wait(1.0)
        assert [o.record["job"] for o in outcomes] == [running, then]
        assert pool.running == 0 and not Path(ahead).exists()
    finally:
        pool.terminate()
