"""The Ray executor (``harness run --executor ray [--address HOST:PORT]``): each claimed
cell is one Ray task with the cell's ``resources`` (``num_cpus``, ``num_gpus``: Ray places
it on a node with room and sets its ``CUDA_VISIBLE_DEVICES``), retried by Ray up to
``max_retries`` times when its worker process or node dies.

The driver (this process) still decides what is computed: it claims each cell before
submitting it (file claims, or the PostgreSQL cells table with ``--store``), renews the
claim while the task runs, and records the result only while it holds the claim. Ray
never decides correctness; a retried task's result is recorded once because the driver
records each cell once. Jobs are plain data (harness.runner.execute.CellJob): a task
rebuilds its task and method from the hashed config, so a cell computed here is the
same cell, with the same numbers, as one computed by the local executor.

Without ``--address`` a local Ray instance is started (one CPU per core) and shut down
at the end. Every node must have harness (and the spec's plugins) installed and see the
data files at the same paths.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from harness.errors import HarnessError
from harness.runner.pool import Outcome, members

DEFAULT_RETRIES = 3
CAPACITY_EVERY_S = 5.0


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise HarnessError('--executor ray needs Ray: pip install "imm-harness[cluster]"'
                           ) from None
    return ray


def harness_cell(job: Any) -> dict[str, Any] | list[dict[str, Any]]:
    """The Ray task: run one cell (harness.runner.execute.run_job), or a group of cells
    (harness.runner.group: their records, a list), on whatever node."""
    from harness.runner.group import GroupJob, run_group_job

    if isinstance(job, GroupJob):
        return list(run_group_job(job))
    from harness.runner.execute import run_job

    return run_job(job)


def where(job: Any) -> dict[str, Any]:
    """A diagnostic task: where a cell task would run (node, pid, visible GPUs); a
    number as ``job`` makes it last that many seconds."""
    import socket

    if isinstance(job, int | float):
        time.sleep(job)
    return {"host": socket.gethostname(), "pid": os.getpid(), "job": job,
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "node_ip": _node_ip()}


def _node_ip() -> str | None:
    try:
        import ray

        return ray.util.get_node_ip_address()
    except Exception:  # noqa: BLE001 - diagnostic only
        return None


PROBE_TIMEOUT_S = 5.0


def _one_line(exc: BaseException) -> str:
    """Ray's error in one line: its first line and its cause's last (Ray's messages may
    embed a whole traceback)."""
    def first(text: str) -> str:
        lines = [x for x in text.strip().splitlines() if x.strip()]
        return lines[0].split(" (Failed to connect")[0] if lines else type(exc).__name__

    text = first(str(exc))
    cause = exc.__cause__
    if cause is not None:
        lines = [x.strip() for x in str(cause).strip().splitlines() if x.strip()]
        if lines:
            text += f" ({lines[-1]})"
    return " ".join(text.split())[:400]


def unreachable(address: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why nothing answers at a Ray head's ``HOST:PORT`` (or ``ray://HOST:PORT``), in
    one line, within ``timeout`` seconds; None when something accepts a connection there
    (``auto`` and other forms are left to Ray)."""
    import socket

    text = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = text.rstrip("/").rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit():
        if address in ("auto", "local"):
            return None
        return f"not HOST:PORT ({address!r})"
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        return f"cannot resolve {host} ({getattr(exc, 'strerror', None) or exc})"
    problem = "no address"
    for family, kind, proto, _, where in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.settimeout(timeout)
            try:
                probe.connect(where)
            except OSError as exc:
                problem = (f"no answer within {timeout:.0f}s" if isinstance(exc, TimeoutError)
                           else exc.strerror or str(exc))
                continue
            speaks = _speaks_grpc(probe)
            if speaks is None:
                return None
            problem = f"something listens there but {speaks}"
            break
    return f"{problem} (is the head running, and is the port its GCS port?)"


HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def _speaks_grpc(connection: Any) -> str | None:
    """None when the peer answers the HTTP/2 preface with a SETTINGS frame, as a Ray
    head's GCS (a gRPC server) does at once; else what it did instead. Ray would wait
    minutes on a port that accepts connections and never answers."""
    try:
        connection.sendall(HTTP2_PREFACE)
        head = b""
        while len(head) < 9:
            chunk = connection.recv(9 - len(head))
            if not chunk:
                return "closed the connection without answering as a Ray head (gRPC)"
            head += chunk
    except TimeoutError:
        return "gave no answer as a Ray head (gRPC) within the probe's time"
    except OSError as exc:
        return f"failed the Ray head's handshake ({exc.strerror or exc})"
    if head[3] != 4:  # an HTTP/2 frame header: length (3), type (1); 4 = SETTINGS
        return "does not answer as a Ray head (gRPC)"
    return None


class RayExecutor:
    """Submits jobs as Ray tasks; ``free`` is the room the cluster has for more cells
    (or ``slots`` when given), so that cells are claimed only when they can start."""

    bar: Any = None

    def __init__(self, address: str | None = None, slots: int | None = None, *,
                 resources: Callable[[Any], dict[str, float]] | None = None,
                 max_retries: int = DEFAULT_RETRIES, cpus: int | None = None,
                 run: Callable[[Any], dict[str, Any]] = harness_cell) -> None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray = _import_ray()
        self.ray = ray
        self.address = address
        self.slots = slots
        self.resources = resources or (lambda job: {"cpus": 1.0, "gpus": 0.0})
        self.max_retries = max_retries
        self.own = address is None
        options: dict[str, Any] = {"logging_level": "ERROR", "log_to_driver": False,
                                   "configure_logging": True}
        if not self.own:
            problem = unreachable(address)  # type: ignore[arg-type]
            if problem is not None:  # Ray itself would retry for minutes
                raise HarnessError(f"cannot connect to the Ray cluster at {address}: "
                                   f"{problem}; nothing was run")
        try:
            if self.own:
                from harness.runner.sweep import available_cores

                # "local": a new instance of this run's own, whatever $RAY_ADDRESS or a
                # stale ray_current_cluster file of an earlier `ray start` says
                ray.init(address="local", num_cpus=cpus or available_cores(),
                         include_dashboard=False, **options)
            else:
                ray.init(address=address, **options)
        except Exception as exc:  # noqa: BLE001 - one line for the user
            text = _one_line(exc)
            where_ = f"the Ray cluster at {address}" if address else "a local Ray instance"
            raise HarnessError(f"cannot connect to {where_}: {text}") from None
        self._remote = ray.remote(run)
        self._refs: dict[Any, Any] = {}  # ObjectRef -> job
        self._capacity = 0
        self._checked = 0.0

    # ---- the Executor interface ---------------------------------------------------------
    def _room(self) -> int:
        """How many cells the cluster can run at once, by the default resources (CPU,
        and GPU when cells need one); re-read every few seconds (nodes join and leave)."""
        now = time.monotonic()
        if now - self._checked > CAPACITY_EVERY_S:
            self._checked = now
            total = self.ray.cluster_resources()
            need = self._default_need
            room = int(total.get("CPU", 0) // max(need["cpus"], 1e-9))
            if need["gpus"] > 0:
                room = min(room, int(total.get("GPU", 0) // need["gpus"]))
            self._capacity = max(1, room)
        return self._capacity

    _default_need: dict[str, float] = {"cpus": 1.0, "gpus": 0.0}

    def set_default_need(self, need: dict[str, float]) -> None:
        self._default_need = dict(need)
        self._checked = 0.0

    @property
    def free(self) -> int:
        limit = self.slots if self.slots is not None else self._room()
        return limit - len(self._refs)

    @property
    def running(self) -> int:
        return len(self._refs)

    def free_for(self, left: int) -> int:
        return self.free

    def submit(self, job: Any) -> None:
        need = self.resources(job)
        if self.bar is not None:
            self.bar.describe(f"cells (Ray{' ' + self.address if self.address else ''})")
        label = getattr(job, "cell_id", "cell")
        ref = self._remote.options(num_cpus=need["cpus"], num_gpus=need["gpus"],
                                   max_retries=self.max_retries, retry_exceptions=False,
                                   name=f"harness_cell:{label}").remote(job)
        self._refs[ref] = job

    def wait(self, timeout: float | None) -> list[Outcome]:
        if not self._refs:
            return []
        refs = list(self._refs)
        ready, _ = self.ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:
            more, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0)
            ready = list(dict.fromkeys([*ready, *more]))
        outcomes = []
        for ref in ready:
            job = self._refs.pop(ref)
            try:
                result = self.ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - the task died past its retries
                reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
                outcomes.extend(Outcome(j, None, f"the Ray task failed ({reason})")
                                for j in members(job))
                continue
            if isinstance(result, list):  # a group's records
                cells = {j.cell_id: j for j in members(job)}
                outcomes.extend(Outcome(cells[r["cell_id"]], r) for r in result)
            else:
                outcomes.append(Outcome(job, result))
        return outcomes

    def fractions(self) -> list[float]:
        return []

    def terminate(self) -> None:
        """Cancel every running cell task (an interrupt)."""
        for ref in list(self._refs):
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - already finished
                pass
        self._refs.clear()

    def kill(self) -> None:
        """The second interrupt: cancel at once; a local instance's processes are ended."""
        self.terminate()
        if self.own:
            try:
                node = self.ray._private.worker._global_node
                if node is not None:
                    node.kill_all_processes(check_alive=False, allow_graceful=False)
            except Exception:  # noqa: BLE001 - exiting anyway
                pass

    def close(self) -> None:
        if self._refs:
            self.terminate()
        try:
            self.ray.shutdown()
        except Exception:  # noqa: BLE001 - the results are recorded
            pass
