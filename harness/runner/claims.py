"""Per-cell claims, so that concurrent runs of one spec compute each cell once.

A claim is a lock file ``<claims>/<key>.lock`` created atomically (``O_CREAT | O_EXCL``,
which also holds on NFS v3+), holding the owner's host, pid, the pid's start time and a
random token; its modification time is the heartbeat, renewed by a thread of the owner
every ``timeout / 4`` seconds. A claim is taken over when its owner is gone (same host,
pid dead or reused) or silent (no heartbeat for ``timeout`` seconds: a stopped process,
or another host that died). Takeover is serialised by a second lock file, and the owner
checks its token before renewing, releasing or recording, so a claim taken from a silent
owner that wakes up is never renewed or released by it, and its result is discarded.

``ClaimStore`` is the interface the runner uses; the cluster executor can implement it on
a database table (claim with ``SELECT ... FOR UPDATE SKIP LOCKED``, lease = heartbeat).
The timeout is ``$HARNESS_CLAIM_TIMEOUT`` seconds (default 60).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness.jsonfile import read_json
from harness.runner.heartbeat import Heartbeat

TIMEOUT_ENV = "HARNESS_CLAIM_TIMEOUT"
DEFAULT_TIMEOUT = 60.0


def claim_timeout() -> float:
    try:
        return max(0.5, float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT)))
    except ValueError:
        return DEFAULT_TIMEOUT


def process_start(pid: int) -> str | None:
    """The start time of ``pid`` (Linux /proc), to tell a live owner from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()[19]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Claim:
    """A claim this process holds; ``lost`` once another run took it over."""

    key: str
    token: str
    lost: bool = field(default=False)


class ClaimStore(Protocol):
    """What the runner needs of a claim backend (files here; a database on a cluster)."""

    def acquire(self, key: str) -> Claim | None: ...
    def holds(self, claim: Claim) -> bool: ...
    def release(self, claim: Claim) -> None: ...
    def holder(self, key: str) -> str | None: ...
    def close(self) -> None: ...


class FileClaims:
    """Claims as lock files in one folder (see the module docstring)."""

    def __init__(self, directory: Path, timeout: float | None = None) -> None:
        self.directory = directory
        self.timeout = claim_timeout() if timeout is None else timeout
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.start = process_start(self.pid)
        self._held: dict[str, Claim] = {}
        self._lock = threading.Lock()
        self._heartbeat = Heartbeat(self.beat, self.timeout, "harness-claims")

    # ---- paths and files -------------------------------------------------------------
    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.lock"

    def _read(self, path: Path) -> tuple[dict[str, Any] | None, float | None]:
        """(content, mtime) of a lock file; content None when unreadable or being written."""
        try:
            mtime = path.stat().st_mtime
            content = read_json(path)
        except FileNotFoundError:
            return None, None
        except (OSError, ValueError):
            try:
                return None, path.stat().st_mtime
            except OSError:
                return None, None
        return (content if isinstance(content, dict) else None), mtime

    def _create(self, key: str) -> Claim | None:
        path = self._path(key)
        token = secrets.token_hex(8)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return None
        info = {"host": self.host, "pid": self.pid, "pid_start": self.start, "token": token,
                "since": time.time()}
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(json.dumps(info))
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:  # a Ctrl-C mid-write: no lock file is left that none holds
            path.unlink(missing_ok=True)
            raise
        return Claim(key, token)

    def _stale(self, info: dict[str, Any] | None, mtime: float) -> bool:
        """Whether the owner of a lock is gone (same host) or silent (no heartbeat)."""
        silent = time.time() - mtime > self.timeout
        if info is None:
            return silent
        if info.get("host") == self.host and isinstance(info.get("pid"), int):
            pid = info["pid"]
            if not pid_alive(pid):
                return True
            start = process_start(pid)
            if start is not None and info.get("pid_start") not in (None, start):
                return True  # the pid was reused by another process
        return silent

    def _take_over(self, key: str, seen: dict[str, Any] | None) -> Claim | None:
        path = self._path(key)
        guard = path.with_suffix(".takeover")
        try:
            fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            with contextlib.suppress(OSError):  # a taker that died mid-takeover
                if time.time() - guard.stat().st_mtime > self.timeout:
                    guard.unlink()
            return None
        os.close(fd)
        try:
            info, mtime = self._read(path)
            if mtime is not None:
                same = (info or {}).get("token") == (seen or {}).get("token")
                if not (same and self._stale(info, mtime)):
                    return None
                path.unlink(missing_ok=True)
            return self._create(key)
        finally:
            guard.unlink(missing_ok=True)

    # ---- the interface ---------------------------------------------------------------
    def acquire(self, key: str) -> Claim | None:
        """The claim on ``key`` if nobody live holds it (taking over a stale one), else
        None. Never blocks."""
        self.directory.mkdir(parents=True, exist_ok=True)
        claim = None
        try:
            claim = self._create(key)
            if claim is None:
                info, mtime = self._read(self._path(key))
                if mtime is None:
                    claim = self._create(key)  # released in between
                elif self._stale(info, mtime):
                    claim = self._take_over(key, info)
            if claim is not None:
                with self._lock:
                    self._held[key] = claim
        except BaseException:  # interrupted: a claim made but not yet held is given back
            if claim is not None and key not in self._held:
                self._path(key).unlink(missing_ok=True)
            raise
        if claim is not None:
            self._start_heartbeat()
        return claim

    def holds(self, claim: Claim) -> bool:
        """Whether the lock file still carries this claim's token."""
        if claim.lost:
            return False
        info, _ = self._read(self._path(claim.key))
        if (info or {}).get("token") != claim.token:
            claim.lost = True
        return not claim.lost

    def release(self, claim: Claim) -> None:
        with self._lock:
            self._held.pop(claim.key, None)
        if self.holds(claim):
            self._path(claim.key).unlink(missing_ok=True)

    def holder(self, key: str) -> str | None:
        """'host:pid' of the live owner of ``key``, or None."""
        info, mtime = self._read(self._path(key))
        if mtime is None or self._stale(info, mtime):
            return None
        return f"{(info or {}).get('host', '?')}:{(info or {}).get('pid', '?')}"

    def close(self) -> None:
        """Release every claim still held and stop the heartbeat."""
        self._heartbeat.stop()
        with self._lock:
            held = list(self._held.values())
        for claim in held:
            self.release(claim)

    # ---- heartbeat -------------------------------------------------------------------
    def beat(self) -> None:
        """Renew the heartbeat of every claim this process still holds."""
        with self._lock:
            held = list(self._held.values())
        for claim in held:
            if self.holds(claim):
                with contextlib.suppress(OSError):
                    os.utime(self._path(claim.key))

    def _start_heartbeat(self) -> None:
        self._heartbeat.start()
