"""A job handed to a worker that is still starting (the default workers' helpers) is run
and its outcome returned: the worker's 'ready' message on the job's pipe is not mistaken
for the job's end (a group's records were dropped that way)."""

from __future__ import annotations

import os
import time

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
