"""Worker processes for cells: one job at a time each, terminated on request, gone when
the main process is. A job is one cell or a group of cells (harness.runner.group): a
group's records come back one by one as its cells are done.

Why not ``concurrent.futures.ProcessPoolExecutor``: it cannot terminate running workers
(a Ctrl-C would wait for them), and nothing stops its workers when the main process is
killed with SIGKILL. Here each worker is a "spawn" process with a pipe to the main
process; it ignores SIGINT (the main process decides), exits within a second when its
parent is gone (a watchdog thread), and reports progress inside its cell. A worker that
dies mid-cell is reported as lost; the pool starts a new one for the next job.

A job handed to a worker that has not begun it (one still starting, or a busy one given
its next job in advance with ``queue``) waits in its pipe, and the main process may take
it back (``withdraw``) until the worker begins it: the worker and the main process settle
who runs it under a lock on a shared number (the job's ticket), so a job runs exactly
once, in one of the two. A worker holds at most one job not yet begun.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

PROGRESS_EVERY_S = 0.5
WATCHDOG_S = 0.5


@dataclass
class Outcome:
    """A cell's end: its record, or None when the worker died (``lost`` says why)."""

    job: Any
    record: dict[str, Any] | None
    lost: str | None = None


def members(work: Any) -> tuple[Any, ...]:
    """The cell jobs of a piece of work: a group's, or the job itself."""
    return tuple(getattr(work, "jobs", (work,)))


def _watch_parent(parent: int) -> None:
    """Exit at once when the parent process is gone (reparented: the pid changes)."""
    while True:
        time.sleep(WATCHDOG_S)
        if os.getppid() != parent:
            os._exit(1)


def worker_main(conn: Connection, parent: int, run: Callable[..., Any],
                threads: int | None, env: dict[str, str] | None = None,
                announce: bool = False, ticket: Any = None,
                prepare: Callable[[], Any] | None = None) -> None:
    """A worker's life: jobs from the pipe, one at a time, until None or EOF. ``env`` is
    set first (before torch is imported): the worker's CUDA_VISIBLE_DEVICES. With
    ``announce`` it imports what a cell needs first (torch, the runner), calls
    ``prepare`` (e.g. builds the task of the jobs to come; an error there is left to
    the job, which reports it) and then says it is ready. ``ticket``: the shared number
    of the job on offer; a job whose number it no longer holds was taken back by the
    main process and is skipped without a word."""
    os.environ.update(env or {})
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    if announce:
        import torch  # noqa: F401 - the runner imports it lazily; a cell needs it

        import harness.runner.group  # noqa: F401 - the registries, the runner

        if prepare is not None:
            with contextlib.suppress(Exception):
                prepare()

        with contextlib.suppress(OSError):
            conn.send(("ready", None))
    last = [0.0]

    def progress(fraction: float) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_S:
            last[0] = now
            with contextlib.suppress(OSError):  # parent gone: the watchdog ends us
                conn.send(("progress", float(fraction)))

    while True:  # a broken pipe = the parent is gone (killed): exit quietly, no traceback
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        number, job = job
        if not _take(ticket, number):
            continue
        result = run(job, progress)
        try:
            if isinstance(result, dict):
                conn.send(("done", result))
                continue
            for record in result:  # a group: each cell's record as it is done
                conn.send(("part", record))
            conn.send(("done", None))
        except OSError:
            return


def _take(ticket: Any, number: int) -> bool:
    """Settle job ``number`` as begun, unless it was taken back (the ticket moved on)."""
    with ticket.get_lock():
        if ticket.value != number:
            return False
        ticket.value = -number
        return True


class _Worker:
    def __init__(self, ctx: Any, run: Callable[..., Any], threads: int | None,
                 slot: int = 0, env: dict[str, str] | None = None,
                 announce: bool = False, prepare: Callable[[], Any] | None = None) -> None:
        self.conn, child = ctx.Pipe()
        self.slot = slot
        self.ready = not announce
        self.ticket = ctx.Value("q", 0)  # > 0: that job is on offer; < 0: it was begun
        self.offered = 0  # the number of the last job handed over
        self.process = ctx.Process(target=worker_main,
                                   args=(child, os.getpid(), run, threads, env, announce,
                                         self.ticket, prepare),
                                   name="harness-worker", daemon=True)
        self.process.start()
        child.close()
        self.jobs: list[Any] = []  # handed over, the one running (or next) first
        self.fraction = 0.0
        self.reported: set[str] = set()  # cells of the running group already returned

    @property
    def begun(self) -> bool:
        """Whether no job handed to the worker waits to be begun (0: none was handed, or
        the last was taken back; negative: the last was begun)."""
        return self.ticket.value <= 0

    def offer(self, job: Any) -> None:
        self.jobs.append(job)
        self.offered += 1
        with self.ticket.get_lock():
            self.ticket.value = self.offered
        self.conn.send((self.offered, job))


class WorkerPool:
    """Up to ``workers`` processes running ``run(job, progress)``; see the module docstring.
    ``envs``: environment variables of each worker slot (a worker that dies is replaced
    by one with the same), e.g. its CUDA_VISIBLE_DEVICES (harness.runner.placement)."""

    def __init__(self, workers: int, run: Callable[..., Any],
                 threads: int | None = 1, envs: list[dict[str, str]] | None = None) -> None:
        self.workers = workers
        self.run = run
        self.threads = threads
        self.envs = envs or [{} for _ in range(workers)]
        self._ctx = multiprocessing.get_context("spawn")
        self._idle: list[_Worker] = []
        self._busy: list[_Worker] = []
        # Jobs handed in advance to a worker that died before it began them: the next
        # ``withdraw`` returns them (they count as running until then).
        self._orphans: list[Any] = []

    def start(self, prepare: Callable[[], Any] | None = None) -> None:
        """Start every worker now; each takes jobs once it has imported what a cell needs
        and called ``prepare`` (a picklable callable; ``ready``), so that a caller can
        keep computing meanwhile."""
        while len(self._idle) + len(self._busy) < self.workers:
            self._idle.append(self._new_worker(announce=True, prepare=prepare))

    @property
    def ready(self) -> int:
        """Idle workers that are ready for a job."""
        return sum(w.ready for w in self._idle)

    @property
    def free(self) -> int:
        return self.workers - len(self._busy)

    @property
    def running(self) -> int:
        return len(self._busy) + len(self._orphans)

    def fractions(self) -> list[float]:
        """Progress inside each running cell, in [0, 1]."""
        return [w.fraction for w in self._busy]

    def pids(self) -> list[int]:
        return [w.process.pid for w in self._idle + self._busy if w.process.pid]

    def _ahead(self) -> list[_Worker]:
        """Busy workers that could take their next job now: those running a job they
        have begun, with nothing else handed over."""
        return [w for w in self._busy if len(w.jobs) == 1 and w.begun]

    @property
    def queueable(self) -> int:
        """How many jobs ``submit(queue=True)`` could hand to busy workers now."""
        return len(self._ahead())

    def submit(self, job: Any, queue: bool = False) -> None:
        """Hand ``job`` to an idle worker (a ready one first), or with ``queue`` and no
        idle worker, to a busy one as its next job (``queueable``)."""
        if self.free <= 0:
            ahead = self._ahead() if queue else []
            if not ahead:
                raise RuntimeError("no free worker")
            ahead[0].offer(job)
            return
        ready = [w for w in self._idle if w.ready]
        worker = ready[-1] if ready else (self._idle[-1] if self._idle else self._new_worker())
        if worker in self._idle:
            self._idle.remove(worker)
        worker.fraction, worker.reported = 0.0, set()
        worker.offer(job)
        self._busy.append(worker)

    def withdraw(self) -> Any:
        """Take back a job a worker has not begun (one still starting, or a job handed
        over in advance), for the caller to run; None when there is none. The worker
        skips the job when it reads it (and is idle when it had no other)."""
        if self._orphans:
            return self._orphans.pop(0)
        for worker in list(self._busy):
            with worker.ticket.get_lock():
                if worker.ticket.value != worker.offered:
                    continue  # begun
                worker.ticket.value = 0
            job = worker.jobs.pop()
            if not worker.jobs:
                self._busy.remove(worker)
                self._idle.append(worker)
            return job
        return None

    def _new_worker(self, announce: bool = False, prepare: Callable[[], Any] | None = None
                    ) -> _Worker:
        used = {w.slot for w in self._idle + self._busy}
        slot = next(i for i in range(self.workers) if i not in used)
        return _Worker(self._ctx, self.run, self.threads, slot, self.envs[slot], announce,
                       prepare)

    def wait(self, timeout: float | None) -> list[Outcome]:
        """Outcomes of the jobs that ended within ``timeout`` seconds (progress messages
        are absorbed; a starting worker's readiness ends the wait too)."""
        starting = [w for w in self._idle if not w.ready]
        if not self._busy and not starting:
            return []
        handles: list[Any] = [w.conn for w in self._busy + starting] + [
            w.process.sentinel for w in self._busy]
        ready = set(wait(handles, timeout))
        for worker in starting:
            if worker.conn in ready:
                self._started(worker)
        outcomes: list[Outcome] = []
        for worker in list(self._busy):
            if worker.conn in ready:
                outcomes.extend(self._receive(worker))
            elif worker.process.sentinel in ready:
                outcomes.extend(self._dead(worker))
        return outcomes

    def _started(self, worker: _Worker) -> None:
        """A starting worker's message: ready (or gone: it is dropped)."""
        try:
            kind, _ = worker.conn.recv()
            worker.ready = kind == "ready"
        except (EOFError, OSError):
            self._idle.remove(worker)
            worker.conn.close()

    def _receive(self, worker: _Worker) -> list[Outcome]:
        outcomes: list[Outcome] = []
        try:
            while worker.conn.poll():
                kind, payload = worker.conn.recv()
                if kind == "progress":
                    worker.fraction = min(max(payload, 0.0), 1.0)
                    continue
                if kind == "ready":  # handed its job while it was starting
                    worker.ready = True
                    continue
                if kind == "part":
                    jobs = {job.cell_id: job for job in members(worker.jobs[0])}
                    worker.reported.add(payload["cell_id"])
                    outcomes.append(Outcome(jobs[payload["cell_id"]], payload))
                    continue
                job = worker.jobs.pop(0)
                worker.fraction, worker.reported = 0.0, set()
                if payload is not None:
                    outcomes.append(Outcome(job, payload))
                if worker.jobs:  # its next job, handed over in advance
                    continue
                self._busy.remove(worker)
                self._idle.append(worker)
                return outcomes
        except (EOFError, OSError):
            return outcomes + self._dead(worker)
        return outcomes

    def _dead(self, worker: _Worker) -> list[Outcome]:
        worker.process.join(1.0)
        code = worker.process.exitcode
        self._busy.remove(worker)
        worker.conn.close()
        why = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        running = worker.jobs
        if len(running) > 1 and not worker.begun:  # its next job, never begun: not lost
            self._orphans.append(running[-1])
            running = running[:-1]
        return [Outcome(job, None, f"the worker process died ({why})")
                for work in running for job in members(work)
                if getattr(job, "cell_id", None) not in worker.reported]

    def terminate(self, grace: float = 2.0) -> None:
        """Stop every worker now: SIGTERM, then SIGKILL after ``grace`` seconds."""
        workers = self._idle + self._busy
        for w in workers:
            if w.process.is_alive():
                w.process.terminate()
        deadline = time.monotonic() + grace
        for w in workers:
            w.process.join(max(0.0, deadline - time.monotonic()))
            if w.process.is_alive():
                w.process.kill()
                w.process.join(1.0)
            w.conn.close()
        self._idle, self._busy = [], []

    def kill(self) -> None:
        """SIGKILL every worker (the second Ctrl-C)."""
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def close(self) -> None:
        """Idle workers exit (those still starting are stopped: they computed nothing);
        busy ones (there should be none) are terminated."""
        for w in [w for w in self._idle if not w.ready]:
            w.process.terminate()
            w.process.join(2.0)
            w.conn.close()
            self._idle.remove(w)
        for w in self._idle:
            try:
                w.conn.send(None)
            except OSError:
                pass
        for w in self._idle:
            w.process.join(5.0)
            w.conn.close()
        self._idle = []
        if self._busy:
            self.terminate()
