"""Real servers for the cluster tests and the Ray benchmark, all on 127.0.0.1, each started
on free ports in a temp folder of its own and stopped by the PIDs started here (never
``ray stop`` or a kill by name: the machine is shared).

- ``Postgres``: Debian's ``postgresql`` binaries (``initdb`` + ``postgres``), run as the
  ``postgres`` system user when this process is root (``initdb`` refuses root), else as
  the current user. ``Postgres.missing()`` says in one line what to install.
- ``RayNode``: ``ray start --block`` (a head, or a worker joining a head), in its own
  session; stopping it signals that session's processes only.
- ``MlflowServer``: ``mlflow server`` with a PostgreSQL backend store.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.testing.processes import live_processes

HOST = "127.0.0.1"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen, timeout: float, what: str,
               log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} exited (rc {proc.returncode}): {tail}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not open port {port} within {timeout:.0f}s")


def session_members(sid: int) -> list[int]:
    """Live processes of session ``sid`` (a server started with start_new_session)."""
    return live_processes(session=sid)


def stop_session(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the process we started, then SIGKILL whatever of its session is left."""
    sid = proc.pid
    if proc.poll() is None:
        with contextlib.suppress(OSError):
            proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    deadline = time.monotonic() + grace
    left = session_members(sid)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = session_members(sid)
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


# ---- PostgreSQL ---------------------------------------------------------------------------
def _pg_bindir() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").is_file():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


class Postgres:
    """A throwaway PostgreSQL server: ``url`` (postgresql+psycopg://...), ``stop()``."""

    USER = "postgres"

    @staticmethod
    def missing() -> str | None:
        """Why no server can be started here (one line), or None."""
        try:
            import psycopg  # noqa: F401
        except ImportError:
            return 'needs the cluster extra: pip install -e ".[cluster]"'
        if _pg_bindir() is None:
            return "needs PostgreSQL's server: apt-get install postgresql"
        if os.geteuid() == 0:
            try:
                pwd.getpwnam(Postgres.USER)
            except KeyError:
                return "needs the postgres system user (apt-get install postgresql makes it)"
        return None

    def __init__(self) -> None:
        bindir = _pg_bindir()
        assert bindir is not None, Postgres.missing()
        self.root = Path(tempfile.mkdtemp(prefix="harness-pg-"))
        self.port = free_port()
        prefix: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam(self.USER)
            os.chown(self.root, user.pw_uid, user.pw_gid)
            os.chmod(self.root, 0o700)
            prefix = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                      "--init-groups", "--"]
        self.bindir, self.prefix, self.data = bindir, prefix, self.root / "data"
        subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(self.data), "-A", "trust",
                        "-U", "harness", "-E", "UTF8", "--no-sync", "--no-instructions"],
                       check=True, capture_output=True, cwd=self.root)
        self.log = self.root / "server.log"
        self.start_server()

    def start_server(self) -> None:
        """Start the server (again, after ``stop_server``) on the same port and data."""
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [*self.prefix, str(self.bindir / "postgres"), "-D", str(self.data), "-p",
                 str(self.port), "-k", str(self.root), "-c", f"listen_addresses={HOST}",
                 "-c", "fsync=off", "-c", "synchronous_commit=off",
                 "-c", "full_page_writes=off", "-c", "max_connections=300"],
                stdout=out, stderr=subprocess.STDOUT, cwd=self.root, start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def stop_server(self) -> None:
        """``pg_ctl stop -m fast``: every session is terminated (AdminShutdown), as in a
        restart or a failover; the data stays for ``start_server``."""
        subprocess.run([*self.prefix, str(self.bindir / "pg_ctl"), "-D", str(self.data),
                        "stop", "-m", "fast", "-w", "-t", "60"],
                       check=True, capture_output=True, cwd=self.root)
        self.proc.wait(30)

    def restart(self, down_s: float = 0.0) -> None:
        """Stop (fast), stay down ``down_s`` seconds, start again."""
        self.stop_server()
        time.sleep(down_s)
        self.start_server()

    def _wait_ready(self, timeout: float = 60.0) -> None:
        import psycopg

        _wait_port(self.port, self.proc, timeout, "postgres", self.log)
        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.conninfo("postgres"), connect_timeout=5).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def conninfo(self, db: str = "harness") -> str:
        return f"postgresql://harness@{HOST}:{self.port}/{db}"

    def create_db(self, name: str) -> str:
        """A new database; its SQLAlchemy-style URL (what --store takes)."""
        import psycopg

        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://harness@{HOST}:{self.port}/{name}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(20)
        stop_session(self.proc, grace=2.0)
        shutil.rmtree(self.root, ignore_errors=True)


# ---- Ray ----------------------------------------------------------------------------------
def ray_missing() -> str | None:
    """Why Ray cannot be used (one line), or None. Not imported here: Ray reads its
    settings (authentication) once per process, and tests run it in processes of their
    own."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        return 'needs the cluster extra: pip install -e ".[cluster]"'
    return None


class RayNode:
    """``ray start --block`` as a head (``head=None``) or as a worker joining the head
    ``head`` (a RayNode); ``address`` is what ``--address`` takes; ``gpus`` are logical
    (declared, none needed). Ray's token authentication is on with a token of this
    cluster's own, passed to its nodes and drivers in ``env`` (so that the
    ``~/.ray/auth_token`` of other clusters on the machine plays no part)."""

    def __init__(self, *, cpus: int = 1, gpus: int = 0, head: RayNode | None = None) -> None:
        import secrets

        self.head = head
        self.temp_dir = (head.temp_dir if head is not None
                         else Path(tempfile.mkdtemp(prefix="harness-ray-")))
        self.env = dict(head.env) if head is not None else {
            "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
            "RAY_USAGE_STATS_ENABLED": "0"}
        for attempt in (1, 2, 3):  # a free port taken meanwhile by another process
            try:
                self._start(cpus, gpus)
                return
            except RuntimeError:
                if attempt == 3:
                    raise

    def _start(self, cpus: int, gpus: int) -> None:
        head = self.head
        args = [str(BIN / "ray"), "start", "--block", f"--node-ip-address={HOST}",
                f"--num-cpus={cpus}", f"--num-gpus={gpus}", "--disable-usage-stats",
                f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
                f"--metrics-export-port={free_port()}",
                f"--dashboard-agent-listen-port={free_port()}",
                f"--dashboard-agent-grpc-port={free_port()}",
                f"--runtime-env-agent-port={free_port()}",
                f"--min-worker-port={(low := _port_range())}",
                f"--max-worker-port={low + 199}"]
        if head is None:
            self.port = free_port()
            self.address = f"{HOST}:{self.port}"
            args += ["--head", f"--port={self.port}", "--include-dashboard=false",
                     f"--ray-client-server-port={free_port()}",
                     f"--temp-dir={self.temp_dir}"]
        else:
            self.address = head.address
            args += [f"--address={head.address}"]
        self.log = self.temp_dir / f"node-{'head' if head is None else free_port()}.log"
        environment = {**os.environ, **self.env}
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                         env=environment, start_new_session=True)
        if head is None:
            try:
                _wait_port(self.port, self.proc, 90, "ray head", self.log)
                wait_for_nodes(self, 1)  # a driver can connect
            except BaseException:
                stop_session(self.proc)
                raise

    def stop(self) -> None:
        stop_session(self.proc)
        if self.head is None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)


def _port_range() -> int:
    """The start of 200 worker ports that are free now (a random block above 20000)."""
    import random

    for _ in range(50):
        low = random.randrange(20000, 60000, 200)
        if all(_free(p) for p in range(low, low + 200, 20)):
            return low
    return 20000


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def wait_for_nodes(head: RayNode, count: int, timeout: float = 90.0) -> None:
    """Wait until ``count`` nodes of ``head``'s cluster are alive."""
    address = head.address
    code = ("import ray, sys, time\n"
            f"ray.init(address={address!r}, logging_level='ERROR', log_to_driver=False)\n"
            f"deadline = time.time() + {timeout}\n"
            f"while sum(n['Alive'] for n in ray.nodes()) < {count}:\n"
            "    if time.time() > deadline: sys.exit(1)\n"
            "    time.sleep(0.3)\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=timeout + 60,
                   env={**os.environ, **head.env})


# ---- MLflow -------------------------------------------------------------------------------
class MlflowServer:
    """``mlflow server`` on 127.0.0.1 with ``backend`` (a PostgreSQL URL) as its store."""

    def __init__(self, backend: str, workdir: Path) -> None:
        self.port = free_port()
        self.uri = f"http://{HOST}:{self.port}"
        self.log = workdir / "mlflow-server.log"
        artifacts = workdir / "mlartifacts"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [str(BIN / "mlflow"), "server", "--host", HOST, "--port", str(self.port),
                 "--backend-store-uri", backend, "--default-artifact-root", str(artifacts),
                 "--workers", "1"],
                stdout=out, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True,
                env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
        try:
            _wait_port(self.port, self.proc, 120, "mlflow server", self.log)
            self._wait_health()
        except BaseException:
            self.stop()
            raise

    def _wait_health(self, timeout: float = 60.0) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=5) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server {self.uri} not healthy")
            time.sleep(0.3)

    def stop(self) -> None:
        stop_session(self.proc)
