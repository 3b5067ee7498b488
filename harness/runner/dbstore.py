"""The shared store on PostgreSQL (``--store postgresql+psycopg://...``): the cells table,
leases, results, the specs as run and an event log, for many drivers and workers on many
machines at once.

Tables (created on first use):

- ``harness_cells`` (spec, cell_id) -> state (pending | running | done | failed), owner,
  attempt, lease_until, record. A cell is claimed with ``SELECT ... FOR UPDATE SKIP
  LOCKED`` (a cell that is pending, or running with an expired lease) and updated to
  running with this owner and ``attempt + 1``; the owner's heartbeat renews the lease
  (``lease_until = now() + timeout``, server time: no clock skew between hosts). A result
  is accepted only by one compare-and-set ``UPDATE ... WHERE owner = me AND attempt = mine
  AND state = 'running'``: a late result of an owner whose lease expired and whose cell
  was taken (the attempt moved on) is refused, so no cell is recorded twice whatever the
  engine does (a retried task, two drivers, a worker that wakes from a pause). ``done``
  holds final records (ok, skipped, diverged); ``failed`` (an error) is pending again on
  the next ``harness run``, as in the file store.
- ``harness_locks`` (key) -> owner, attempt, lease_until: the other claims (a study's
  tuning, the MLflow parent run), with the same lease.
- ``harness_specs`` (spec, version) -> the spec as run, its grid, data and results
  folders, tracking state: what ``harness worker`` rebuilds cells from and what
  ``harness report --store`` / ``harness status`` read.
- ``harness_events``: one row per cell claimed, recorded, refused, lost or released (the
  journal, shared).

An owner on this host whose process is gone is expired at once (as with file claims);
elsewhere its lease runs out. The timeout is ``$HARNESS_CLAIM_TIMEOUT`` seconds
(default 60).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from harness.errors import HarnessError
from harness.jsonfile import read_json
from harness.masking import mask, url_secret
from harness.runner.claims import Claim, claim_timeout, pid_alive, process_start
from harness.runner.heartbeat import Heartbeat
from harness.runner.store import ResultsStore

STATES = ("pending", "running", "done", "failed")
T = TypeVar("T")

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS harness_specs (
    spec text NOT NULL,
    version text NOT NULL,
    body jsonb NOT NULL,
    grid jsonb NOT NULL,
    results_dir text,
    data_dir text,
    tracking_uri text,
    tracking jsonb,
    updated timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (spec, version)
);
CREATE TABLE IF NOT EXISTS harness_cells (
    spec text NOT NULL,
    cell_id text NOT NULL,
    version text NOT NULL,
    label text NOT NULL,
    size integer NOT NULL,
    seed integer NOT NULL,
    priority double precision NOT NULL DEFAULT 0,
    state text NOT NULL DEFAULT 'pending',
    owner text,
    attempt integer NOT NULL DEFAULT 0,
    lease_until timestamptz,
    record jsonb,
    updated timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (spec, cell_id)
);
CREATE INDEX IF NOT EXISTS harness_cells_runnable ON harness_cells (state, priority);
CREATE TABLE IF NOT EXISTS harness_locks (
    key text PRIMARY KEY,
    owner text NOT NULL,
    attempt integer NOT NULL,
    lease_until timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS harness_events (
    id bigserial PRIMARY KEY,
    time timestamptz NOT NULL DEFAULT now(),
    spec text,
    cell_id text,
    event text NOT NULL,
    owner text,
    attempt integer,
    detail jsonb
);
"""

RUNNABLE = ("(c.state = 'pending' OR (c.state = 'running' AND c.lease_until < now()))")


class Claimed(NamedTuple):
    """A cell claimed from the cells table."""

    spec: str
    cell_id: str
    claim: Claim
    version: str


class StoreError(HarnessError):
    """The store cannot be used (bad URL, server unreachable, connection lost for longer
    than the retry time); one line, its URL masked."""


RETRY_ENV = "HARNESS_STORE_RETRY"
DEFAULT_RETRY_S = 300.0
MAX_BACKOFF_S = 5.0
CLOSE_RETRY_S = 10.0
# SQLSTATEs after which the same statement may succeed on a new connection: connection
# exceptions (08...), the server shutting down or starting (57P01-57P03: a restart or a
# failover), too many connections, serialisation failures and deadlocks.
TRANSIENT = ("08", "57P01", "57P02", "57P03", "53300", "40001", "40P01")


def retry_seconds() -> float:
    """How long a lost connection is retried: ``$HARNESS_STORE_RETRY`` seconds (default
    300; 0 = give up at once)."""
    try:
        return max(0.0, float(os.environ.get(RETRY_ENV, DEFAULT_RETRY_S)))
    except ValueError:
        return DEFAULT_RETRY_S


def is_store_url(url: str) -> bool:
    return url.startswith(("postgresql://", "postgresql+psycopg://", "postgres://"))


def conninfo(url: str) -> str:
    """What psycopg takes: the SQLAlchemy-style ``postgresql+psycopg://`` made plain,
    checked by libpq's own parser; a StoreError (one line, password masked) otherwise."""
    if not is_store_url(url):
        scheme = url.partition("://")[0] if "://" in url else ""
        driver = (f" (driver {scheme.partition('+')[2]})"
                  if scheme.startswith("postgresql+") else "")
        raise StoreError(f"--store {mask(url)}: not a PostgreSQL URL harness can use{driver}; "
                         "give postgresql+psycopg://USER[:PASSWORD]@HOST:PORT/DB")
    plain = "postgresql://" + url.split("://", 1)[1]
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        return plain
    try:
        conninfo_to_dict(plain)
    except Exception as exc:  # noqa: BLE001 - libpq's parser: any refusal is one line
        raise StoreError(f"--store {mask(url)}: malformed URL "
                         f"({_first_line(exc, url)})") from None
    return plain


def sqlalchemy_url(url: str) -> str:
    """The URL SQLAlchemy (Optuna, MLflow) takes, with the psycopg (v3) driver."""
    return "postgresql+psycopg://" + url.split("://", 1)[1]


def redact(url: str) -> str:
    """The URL without its password (for messages)."""
    return mask(url)


def _first_line(exc: BaseException, url: str) -> str:
    """The first line of a driver's message, masked (it may quote part of the URL)."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return mask(" ".join(line.split())[:300], [url_secret(url)])


def owner_name(token: str | None = None) -> str:
    """``host:pid:start:token``: who holds a claim (and, on this host, whether alive)."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{process_start(pid) or '-'}:" \
           f"{token or secrets.token_hex(4)}"


def owner_gone(owner: str | None) -> bool:
    """Whether ``owner`` is a process of this host that is gone (or whose pid was reused)."""
    if not owner:
        return False
    parts = owner.split(":")
    if len(parts) < 4 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if not pid_alive(pid):
        return True
    start = process_start(pid)
    return start is not None and parts[2] not in ("-", start)


def short_owner(owner: str | None) -> str:
    """'host:pid' of an owner string."""
    if not owner:
        return "?"
    parts = owner.split(":")
    return ":".join(parts[:2])


class _Outage:
    """One line when a store's connection is lost and one when it is back, however many
    connections (the main one, the heartbeat's) notice it."""

    _lock = threading.Lock()
    _since: dict[str, float] = {}

    @classmethod
    def lost(cls, url: str, why: str, retry_s: float) -> None:
        with cls._lock:
            if url in cls._since:
                return
            cls._since[url] = time.monotonic()
        print(f"warning: store {mask(url)}: connection lost ({why}); retrying for up to "
              f"{retry_s:.0f}s (${RETRY_ENV})", file=sys.stderr, flush=True)

    @classmethod
    def back(cls, url: str) -> None:
        with cls._lock:
            since = cls._since.pop(url, None)
        if since is not None:
            print(f"note: store {mask(url)}: connection back after "
                  f"{time.monotonic() - since:.1f}s", file=sys.stderr, flush=True)


class Database:
    """One connection (autocommit) with a lock, so the heartbeat thread can share it.

    Every statement (``query``) and transaction (``run``) is retried whole, with
    exponential backoff, while the connection is lost (a restart, a failover, a network
    blip), for up to ``retry_s`` seconds; then a StoreError (one line). A transaction
    whose commit was cut off may have committed: the callers' statements are written
    so that running one again is harmless (see CellStore.accept and CellStore.lock).
    Errors that a new connection would not cure (a cancelled query, bad SQL) are a
    StoreError at once. The first connection is not retried unless ``lazy`` (a wrong
    URL is said at once)."""

    def __init__(self, url: str, retry_s: float | None = None, lazy: bool = False) -> None:
        try:
            import psycopg
        except ImportError:
            raise StoreError('a PostgreSQL store needs the cluster extra: pip install '
                             '"imm-harness[cluster]" (psycopg)') from None
        self.url = url
        self._info = conninfo(url)
        self._psycopg = psycopg
        self._lock = threading.RLock()
        self.retry_s = retry_seconds() if retry_s is None else retry_s
        self._conn: Any = None
        if not lazy:
            try:
                self._conn = self._connect()
            except psycopg.Error as exc:
                raise StoreError(f"store {mask(url)}: cannot connect "
                                 f"({_first_line(exc, url)})") from None
            self._ensure_schema()

    def _connect(self) -> Any:
        return self._psycopg.connect(self._info, autocommit=True, connect_timeout=10)

    def _ensure_schema(self) -> None:
        def create(cur: Any) -> None:
            cur.execute("SELECT pg_advisory_xact_lock(8410214)")  # one creator at a time
            cur.execute(SCHEMA_SQL)

        self.run(create)

    def _transient(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the connection is gone (worth a new one)."""
        if not isinstance(exc, self._psycopg.Error):
            return False
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            return True
        state = getattr(exc, "sqlstate", None) or ""
        return isinstance(exc, self._psycopg.OperationalError) and (
            not state or state.startswith(TRANSIENT))

    def _fatal(self, exc: BaseException) -> StoreError:
        """The one line for an error a new connection would not cure."""
        state = getattr(exc, "sqlstate", None) or ""
        hint = ""
        if state == "57014":
            hint = ("; the server cancelled a statement (a statement_timeout or "
                    "lock_timeout in the URL's options or the server's settings?)")
        return StoreError(f"store {mask(self.url)}: {type(exc).__name__}: "
                          f"{_first_line(exc, self.url)}{hint}")

    def run(self, body: Callable[[Any], T], transaction: bool = True) -> T:
        """``body(cursor)`` in one transaction (or in autocommit), retried whole while the
        connection is lost (see the class docstring)."""
        delay, deadline = 0.1, None
        with self._lock:
            while True:
                try:
                    if self._conn is None or self._conn.closed or self._conn.broken:
                        self._conn = self._connect()
                    if transaction:
                        with self._conn.transaction(), self._conn.cursor() as cur:
                            result = body(cur)
                    else:
                        with self._conn.cursor() as cur:
                            result = body(cur)
                    if deadline is not None:
                        _Outage.back(self.url)
                    return result
                except self._psycopg.Error as exc:
                    if not self._transient(exc):
                        raise self._fatal(exc) from None
                    now = time.monotonic()
                    if deadline is None:
                        deadline = now + self.retry_s
                        _Outage.lost(self.url, _first_line(exc, self.url), self.retry_s)
                    self._drop()
                    if now >= deadline:
                        raise StoreError(
                            f"store {mask(self.url)}: connection lost and not back within "
                            f"{self.retry_s:.0f}s ({_first_line(exc, self.url)}); raise "
                            f"${RETRY_ENV} to wait longer") from None
                    time.sleep(min(delay, max(0.0, deadline - now)))
                    delay = min(delay * 2, MAX_BACKOFF_S)

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """One statement in autocommit; its rows ([] when it returns none)."""
        def execute(cur: Any) -> list[tuple[Any, ...]]:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description is not None else []

        return self.run(execute, transaction=False)

    def _drop(self) -> None:
        with contextlib.suppress(Exception):
            if self._conn is not None:
                self._conn.close()
        self._conn = None

    def close(self) -> None:
        with self._lock:
            self._drop()


def _json(value: Any) -> Any:
    from psycopg.types.json import Jsonb

    return Jsonb(value)


class CellStore:
    """The shared store of one PostgreSQL database (see the module docstring); one owner
    identity per instance, whose heartbeat renews every claim it holds."""

    def __init__(self, url: str, timeout: float | None = None) -> None:
        self.db = Database(url)
        self.url = url
        self.timeout = claim_timeout() if timeout is None else timeout
        self.owner = owner_name()
        self._held: dict[tuple[str, str], Claim] = {}  # (spec or "", key) -> claim
        self._lock = threading.Lock()
        self._heartbeat = Heartbeat(self._beat_safely, self.timeout, "harness-store-beat")
        self._beat_db: Database | None = None

    # ---- specs -------------------------------------------------------------------------
    def save_spec(self, spec_name: str, version: str, body: dict[str, Any],
                  grid: dict[str, Any], results_dir: str, data_dir: str | None,
                  tracking_uri: str | None) -> None:
        self.db.query(
            "INSERT INTO harness_specs (spec, version, body, grid, results_dir, data_dir, "
            "tracking_uri) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (spec, version) "
            "DO UPDATE SET body = EXCLUDED.body, grid = EXCLUDED.grid, results_dir = "
            "EXCLUDED.results_dir, data_dir = EXCLUDED.data_dir, tracking_uri = "
            "EXCLUDED.tracking_uri, updated = now()",
            (spec_name, version, _json(body), _json(grid), results_dir, data_dir,
             tracking_uri))

    def spec_row(self, spec_name: str, version: str | None = None) -> dict[str, Any] | None:
        """The spec as run (the latest version unless ``version``)."""
        where = "spec = %s" + (" AND version = %s" if version else "")
        params = (spec_name, version) if version else (spec_name,)
        rows = self.db.query(
            "SELECT spec, version, body, grid, results_dir, data_dir, tracking_uri, tracking "
            f"FROM harness_specs WHERE {where} ORDER BY updated DESC LIMIT 1", params)
        if not rows:
            return None
        keys = ("spec", "version", "body", "grid", "results_dir", "data_dir",
                "tracking_uri", "tracking")
        return dict(zip(keys, rows[0], strict=True))

    def specs(self) -> list[str]:
        return [r[0] for r in self.db.query("SELECT DISTINCT spec FROM harness_specs "
                                            "ORDER BY spec")]

    def read_tracking(self, spec_name: str) -> dict[str, Any]:
        rows = self.db.query("SELECT tracking FROM harness_specs WHERE spec = %s AND "
                             "tracking IS NOT NULL ORDER BY updated DESC LIMIT 1",
                             (spec_name,))
        return dict(rows[0][0]) if rows and isinstance(rows[0][0], dict) else {}

    def write_tracking(self, spec_name: str, state: dict[str, Any]) -> None:
        self.db.query("UPDATE harness_specs SET tracking = %s WHERE spec = %s",
                      (_json(state), spec_name))

    # ---- cells -------------------------------------------------------------------------
    def enqueue(self, spec_name: str, version: str, cells: list[Any],
                done: dict[str, dict[str, Any]]) -> None:
        """Add the cells a run selected (pending; ``done``: final records found in the
        results folder, added as done); a failed cell (an error) is pending again."""
        rows = []
        for rank, cell in enumerate(cells):
            record = done.get(cell.cell_id)
            rows.append((spec_name, cell.cell_id, version, cell.label, cell.size, cell.seed,
                         float(rank), "done" if record else "pending",
                         _json(record) if record else None))
        self.db.run(lambda cur: cur.executemany(
            "INSERT INTO harness_cells AS c (spec, cell_id, version, label, size, seed, "
            "priority, state, record) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (spec, cell_id) DO UPDATE SET "
            "state = CASE WHEN c.state = 'failed' THEN 'pending' "
            "WHEN c.state = 'pending' AND EXCLUDED.state = 'done' THEN 'done' "
            "ELSE c.state END, "
            "record = CASE WHEN c.state = 'pending' AND EXCLUDED.state = 'done' "
            "THEN EXCLUDED.record ELSE c.record END, "
            "version = CASE WHEN c.state IN ('pending', 'failed') THEN EXCLUDED.version "
            "ELSE c.version END, priority = EXCLUDED.priority, updated = now()",
            rows))

    def clear(self, spec_name: str, cell_ids: list[str] | None = None) -> int:
        """``--fresh`` (or a cell whose code changed): forget this spec's cells (those of
        ``cell_ids`` only, when given) that nobody is running; how many."""
        only = "" if cell_ids is None else " AND cell_id = ANY(%s)"
        params = (spec_name,) if cell_ids is None else (spec_name, list(cell_ids))
        rows = self.db.query("DELETE FROM harness_cells WHERE spec = %s AND NOT "
                             "(state = 'running' AND lease_until >= now())" + only +
                             " RETURNING 1", params)
        return len(rows)

    def cell(self, spec_name: str, cell_id: str) -> dict[str, Any] | None:
        rows = self.db.query(
            "SELECT state, owner, attempt, record, lease_until > now(), version FROM "
            "harness_cells WHERE spec = %s AND cell_id = %s", (spec_name, cell_id))
        if not rows:
            return None
        state, owner, attempt, record, live, version = rows[0]
        return {"state": state, "owner": owner, "attempt": attempt, "record": record,
                "live": bool(live), "version": version}

    def final_record(self, spec_name: str, cell_id: str) -> dict[str, Any] | None:
        rows = self.db.query("SELECT record FROM harness_cells WHERE spec = %s AND "
                             "cell_id = %s AND state = 'done'", (spec_name, cell_id))
        return rows[0][0] if rows else None

    def records(self, spec_name: str) -> list[dict[str, Any]]:
        """Every recorded cell of ``spec_name`` (done or failed), any version."""
        rows = self.db.query("SELECT record FROM harness_cells WHERE spec = %s AND "
                             "record IS NOT NULL ORDER BY priority", (spec_name,))
        return [r[0] for r in rows]

    def counts(self, spec_name: str) -> dict[str, int]:
        rows = self.db.query(
            "SELECT CASE WHEN state = 'running' AND lease_until < now() THEN 'expired' "
            "ELSE state END, count(*) FROM harness_cells WHERE spec = %s GROUP BY 1",
            (spec_name,))
        return {state: int(n) for state, n in rows}

    def running(self, spec_name: str) -> list[dict[str, Any]]:
        rows = self.db.query(
            "SELECT cell_id, label, size, seed, owner, attempt, "
            "extract(epoch FROM lease_until - now()) FROM harness_cells WHERE spec = %s "
            "AND state = 'running' ORDER BY priority", (spec_name,))
        keys = ("cell_id", "label", "size", "seed", "owner", "attempt", "lease_left_s")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def _expire_gone(self, owners: list[str]) -> None:
        gone = [o for o in set(owners) if owner_gone(o)]
        if gone:
            self.db.query("UPDATE harness_cells SET lease_until = now() - interval '1 second'"
                          " WHERE state = 'running' AND owner = ANY(%s)", (gone,))
            self.db.query("UPDATE harness_locks SET lease_until = now() - interval '1 second'"
                          " WHERE owner = ANY(%s)", (gone,))

    def _expire_gone_local(self, spec_name: str | None) -> None:
        """Expire the leases held by processes of this host that are gone."""
        host = socket.gethostname()
        where = "state = 'running' AND lease_until >= now() AND owner LIKE %s"
        params: tuple[Any, ...] = (f"{host}:%",)
        if spec_name is not None:
            where += " AND spec = %s"
            params += (spec_name,)
        rows = self.db.query(f"SELECT DISTINCT owner FROM harness_cells WHERE {where}",
                             params)
        self._expire_gone([r[0] for r in rows])

    def claim_cells(self, spec_name: str | None, cell_ids: list[str] | None = None,
                    limit: int = 1, exclude: list[str] | None = None) -> list[Claimed]:
        """Claim up to ``limit`` runnable cells (of ``spec_name``, among ``cell_ids``, not
        in ``exclude``), skipping rows other owners are claiming at this moment
        (``SELECT ... FOR UPDATE SKIP LOCKED``), in queue order."""
        self._expire_gone_local(spec_name)
        where, params = [RUNNABLE], []
        if spec_name is not None:
            where.append("c.spec = %s")
            params.append(spec_name)
        if cell_ids is not None:
            where.append("c.cell_id = ANY(%s)")
            params.append(list(cell_ids))
        if exclude:
            where.append("NOT (c.spec || '/' || c.cell_id = ANY(%s))")
            params.append(list(exclude))
        sql = (
            "WITH picked AS (SELECT c.spec, c.cell_id FROM harness_cells c WHERE "
            f"{' AND '.join(where)} ORDER BY c.priority, c.cell_id LIMIT %s "
            "FOR UPDATE SKIP LOCKED) "
            "UPDATE harness_cells h SET state = 'running', owner = %s, attempt = h.attempt "
            "+ 1, lease_until = now() + make_interval(secs => %s), updated = now() "
            "FROM picked WHERE h.spec = picked.spec AND h.cell_id = picked.cell_id "
            "RETURNING h.spec, h.cell_id, h.attempt, h.priority, h.version")
        tries: list[int] = []

        def claim(cur: Any) -> list[tuple[Any, ...]]:
            tries.append(1)
            if len(tries) > 1:  # a commit cut off by a lost connection may have claimed
                orphans = self._orphans(cur)
                if orphans:
                    return orphans
            cur.execute(sql, (*params, limit, self.owner, self.timeout))
            rows = cur.fetchall()
            for spec, cell_id, attempt, _, _ in rows:
                cur.execute("INSERT INTO harness_events (spec, cell_id, event, owner, "
                            "attempt) VALUES (%s, %s, 'claimed', %s, %s)",
                            (spec, cell_id, self.owner, attempt))
            return rows

        claimed = []
        for spec, cell_id, attempt, _, version in sorted(self.db.run(claim),
                                                          key=lambda r: r[3]):
            claim_ = Claim(f"{spec}/{cell_id}", str(attempt))
            claimed.append(Claimed(spec, cell_id, claim_, version))
            self._hold((spec, cell_id), claim_)
        return claimed

    def _orphans(self, cur: Any) -> list[tuple[Any, ...]]:
        """Cells running under this owner that it does not know it holds: claimed by a
        transaction whose commit was cut off (the connection was lost at that moment)."""
        cur.execute("SELECT spec, cell_id, attempt, priority, version FROM harness_cells "
                    "WHERE owner = %s AND state = 'running'", (self.owner,))
        with self._lock:
            held = set(self._held)
        return [r for r in cur.fetchall() if (r[0], r[1]) not in held]

    def left(self, spec_name: str | None, exclude: list[str] | None = None) -> int:
        """Cells not yet recorded (pending or running), of ``spec_name`` or all, not
        counting ``exclude`` ('spec/cell_id')."""
        where, params = ["state IN ('pending', 'running')"], []
        if spec_name is not None:
            where.append("spec = %s")
            params.append(spec_name)
        if exclude:
            where.append("NOT (spec || '/' || cell_id = ANY(%s))")
            params.append(list(exclude))
        rows = self.db.query(f"SELECT count(*) FROM harness_cells WHERE {' AND '.join(where)}",
                             params)
        return int(rows[0][0])

    def accept(self, claim: Claim, record: dict[str, Any], final: bool) -> bool:
        """Record ``record`` if ``claim`` is still the cell's current owner and attempt
        (one compare-and-set); False (and a 'refused' event) otherwise."""
        spec, cell_id = claim.key.split("/", 1)
        state = "done" if final else "failed"
        attempt, tries = int(claim.token), []

        def record_it(cur: Any) -> bool:
            tries.append(1)
            cur.execute(
                "UPDATE harness_cells SET state = %s, record = %s, owner = NULL, "
                "lease_until = NULL, updated = now() WHERE spec = %s AND cell_id = %s AND "
                "owner = %s AND attempt = %s AND state = 'running' RETURNING 1",
                (state, _json(record), spec, cell_id, self.owner, attempt))
            ok = cur.fetchone() is not None
            if not ok and len(tries) > 1:  # the cut-off commit may have recorded it
                cur.execute(
                    "SELECT 1 FROM harness_cells WHERE spec = %s AND cell_id = %s AND "
                    "state = %s AND attempt = %s AND owner IS NULL AND "
                    "record->>'started' IS NOT DISTINCT FROM %s AND "
                    "record->>'finished' IS NOT DISTINCT FROM %s",
                    (spec, cell_id, state, attempt, record.get("started"),
                     record.get("finished")))
                if cur.fetchone() is not None:
                    return True  # recorded (and its event logged) by that commit
            cur.execute("INSERT INTO harness_events (spec, cell_id, event, owner, attempt, "
                        "detail) VALUES (%s, %s, %s, %s, %s, %s)",
                        (spec, cell_id, "recorded" if ok else "refused", self.owner,
                         attempt, _json({"status": record.get("status")})))
            return ok

        ok = self.db.run(record_it)
        with self._lock:
            self._held.pop((spec, cell_id), None)
        if not ok:
            claim.lost = True
        return ok

    def update_record(self, spec_name: str, record: dict[str, Any]) -> None:
        """Store a recorded cell's record again (its MLflow run id added), the same record
        only (same finish time)."""
        self.db.query(
            "UPDATE harness_cells SET record = %s WHERE spec = %s AND cell_id = %s AND "
            "state IN ('done', 'failed') AND record->>'finished' = %s",
            (_json(record), spec_name, record["cell_id"], record.get("finished")))

    def event(self, spec_name: str | None, cell_id: str | None, event: str,
              attempt: int | None = None, **detail: Any) -> None:
        with contextlib.suppress(Exception):  # the audit trail must never cost a result
            self.db.query("INSERT INTO harness_events (spec, cell_id, event, owner, attempt, "
                          "detail) VALUES (%s, %s, %s, %s, %s, %s)",
                          (spec_name, cell_id, event, self.owner, attempt, _json(detail)))

    def events(self, spec_name: str, event: str | None = None) -> list[dict[str, Any]]:
        sql = ("SELECT cell_id, event, owner, attempt, detail FROM harness_events WHERE "
               "spec = %s")
        params: tuple[Any, ...] = (spec_name,)
        if event:
            sql += " AND event = %s"
            params += (event,)
        rows = self.db.query(sql + " ORDER BY id", params)
        keys = ("cell_id", "event", "owner", "attempt", "detail")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    # ---- generic claims (ClaimStore) -----------------------------------------------------
    def holds(self, claim: Claim) -> bool:
        if claim.lost:
            return False
        scope, key = claim.key.split("/", 1)
        if scope == "lock":
            rows = self.db.query("SELECT owner, attempt FROM harness_locks WHERE key = %s",
                                 (key,))
            ok = bool(rows) and rows[0] == (self.owner, int(claim.token))
        else:
            rows = self.db.query("SELECT owner, attempt, state FROM harness_cells WHERE "
                                 "spec = %s AND cell_id = %s", (scope, key))
            ok = bool(rows) and rows[0] == (self.owner, int(claim.token), "running")
        if not ok:
            claim.lost = True
        return ok

    def release(self, claim: Claim) -> None:
        """Give a claim back unrecorded (the cell is pending again, a lock is removed)."""
        scope, key = claim.key.split("/", 1)
        with self._lock:
            self._held.pop((scope, key), None)
        if claim.lost:
            return
        if scope == "lock":
            self.db.query("DELETE FROM harness_locks WHERE key = %s AND owner = %s AND "
                          "attempt = %s", (key, self.owner, int(claim.token)))
        else:
            rows = self.db.query(
                "UPDATE harness_cells SET state = 'pending', owner = NULL, lease_until = "
                "NULL, updated = now() WHERE spec = %s AND cell_id = %s AND owner = %s AND "
                "attempt = %s AND state = 'running' RETURNING 1",
                (scope, key, self.owner, int(claim.token)))
            if rows:
                self.event(scope, key, "released", int(claim.token))

    def lock(self, key: str) -> Claim | None:
        """A named claim (not a cell), or None while a live owner holds it."""
        rows = self.db.query("SELECT owner FROM harness_locks WHERE key = %s AND "
                             "lease_until >= now()", (key,))
        if rows:
            self._expire_gone([rows[0][0]])
        rows = self.db.query(
            "INSERT INTO harness_locks AS l (key, owner, attempt, lease_until) VALUES "
            "(%s, %s, 1, now() + make_interval(secs => %s)) ON CONFLICT (key) DO UPDATE SET "
            "owner = EXCLUDED.owner, attempt = l.attempt + 1, lease_until = "
            "EXCLUDED.lease_until WHERE l.lease_until < now() RETURNING attempt",
            (key, self.owner, self.timeout))
        if not rows:  # held; by this owner only when a cut-off commit took it
            rows = self.db.query("SELECT attempt FROM harness_locks WHERE key = %s AND "
                                 "owner = %s AND lease_until >= now()", (key, self.owner))
            with self._lock:
                if ("lock", key) in self._held:
                    return None
            if not rows:
                return None
        claim = Claim(f"lock/{key}", str(rows[0][0]))
        self._hold(("lock", key), claim)
        return claim

    def lock_holder(self, key: str) -> str | None:
        rows = self.db.query("SELECT owner FROM harness_locks WHERE key = %s AND "
                             "lease_until >= now()", (key,))
        return short_owner(rows[0][0]) if rows else None

    # ---- heartbeat ---------------------------------------------------------------------
    def _hold(self, key: tuple[str, str], claim: Claim) -> None:
        with self._lock:
            self._held[key] = claim
        self._start_heartbeat()

    def beat(self, db: Database | None = None) -> None:
        """Renew the lease of every claim this owner still holds."""
        db = db or self.db
        with self._lock:
            held = list(self._held.items())
        cells = [(s, k, int(c.token)) for (s, k), c in held if s != "lock"]
        locks = [(k, int(c.token)) for (s, k), c in held if s == "lock"]
        interval = f"make_interval(secs => {float(self.timeout)})"
        for spec, key, attempt in cells:
            rows = db.query(f"UPDATE harness_cells SET lease_until = now() + {interval} "
                            "WHERE spec = %s AND cell_id = %s AND owner = %s AND "
                            "attempt = %s AND state = 'running' RETURNING 1",
                            (spec, key, self.owner, attempt))
            if not rows:
                self._mark_lost((spec, key))
        for key, attempt in locks:
            rows = db.query(f"UPDATE harness_locks SET lease_until = now() + {interval} "
                            "WHERE key = %s AND owner = %s AND attempt = %s RETURNING 1",
                            (key, self.owner, attempt))
            if not rows:
                self._mark_lost(("lock", key))

    def _mark_lost(self, key: tuple[str, str]) -> None:
        with self._lock:
            claim = self._held.pop(key, None)
        if claim is not None:
            claim.lost = True

    def _start_heartbeat(self) -> None:
        self._heartbeat.start()

    def _beat_safely(self) -> None:
        """One heartbeat on a connection of its own (a lost connection is retried there,
        see Database); a failure is retried at the next beat."""
        try:
            if self._beat_db is None:
                self._beat_db = Database(self.url, lazy=True)
            self.beat(self._beat_db)
        except Exception as exc:  # noqa: BLE001 - retried at the next beat
            text = str(exc) if isinstance(exc, HarnessError) else type(exc).__name__
            print(f"warning: store heartbeat failed ({text}); retrying", file=sys.stderr)
            if self._beat_db is not None:
                self._beat_db.close()
            self._beat_db = None

    def close(self) -> None:
        """Give back every claim still held, stop the heartbeat, disconnect. A claim that
        cannot be given back within CLOSE_RETRY_S (the server is still down) is left to
        expire: its lease runs out, or at once on this host, since its owner is gone."""
        self._heartbeat.stop()
        self.db.retry_s = min(self.db.retry_s, CLOSE_RETRY_S)
        with self._lock:
            held = list(self._held.values())
        for claim in held:
            try:
                self.release(claim)
            except Exception:  # noqa: BLE001 - left to expire (see the docstring)
                break
        self._heartbeat.stop(join_s=2.0)
        if self._beat_db is not None:
            self._beat_db.close()
        self.db.close()


class DbClaims:
    """The ClaimStore of one spec on a CellStore: cell ids claim rows of the cells table,
    any other key (a study's tuning, 'tracking') a named lock."""

    def __init__(self, store: CellStore, spec_name: str, cells: set[str]) -> None:
        self.store, self.spec, self.cells = store, spec_name, cells

    def acquire(self, key: str) -> Claim | None:
        if key in self.cells:
            got = self.store.claim_cells(self.spec, [key], 1)
            return got[0].claim if got else None
        return self.store.lock(f"{self.spec}/{key}")

    def acquire_many(self, keys: list[str], limit: int) -> dict[str, Claim]:
        """Up to ``limit`` of ``keys`` claimed in one statement, in queue order."""
        return {got.cell_id: got.claim for got in self.store.claim_cells(self.spec, keys, limit)}

    def holds(self, claim: Claim) -> bool:
        return self.store.holds(claim)

    def accept(self, claim: Claim, record: dict[str, Any], final: bool) -> bool:
        return self.store.accept(claim, record, final)

    def release(self, claim: Claim) -> None:
        self.store.release(claim)

    def holder(self, key: str) -> str | None:
        if key in self.cells:
            row = self.store.cell(self.spec, key)
            if row is None or row["state"] != "running" or not row["live"]:
                return None
            return short_owner(row["owner"])
        return self.store.lock_holder(f"{self.spec}/{key}")

    def close(self) -> None:
        """Closing is the CellStore's (it may serve several specs)."""


def spec_version(body: dict[str, Any]) -> str:
    from harness.cells.grid import config_id

    return config_id(json.loads(json.dumps(body, default=str)))


class SharedResults(ResultsStore):
    """A results folder whose truth is the shared store: a cell is done when the cells
    table says so, and its record is also written to the folder (atomic files, as
    without a store, so ``harness report RESULTS`` works on it) when ``files``."""

    def __init__(self, root: Path, cells: CellStore, spec_name: str, files: bool = True
                 ) -> None:
        super().__init__(root)
        self.cells, self.spec_name, self.files = cells, spec_name, files

    @property
    def optuna_url(self) -> str:
        return sqlalchemy_url(self.cells.url)

    def final_record(self, cell_id: str) -> dict[str, Any] | None:
        record = self.cells.final_record(self.spec_name, cell_id)
        if record is not None and self.files:
            self.sync(record)
        return record

    def sync(self, record: dict[str, Any]) -> None:
        """Write the store's record into the folder unless the folder has it already."""
        path = self.record_path(record["cell_id"])
        try:
            here = read_json(path)
        except (OSError, ValueError):
            here = None
        if isinstance(here, dict) and here.get("finished") == record.get("finished") and \
                here.get("mlflow_run_id") and not record.get("mlflow_run_id"):
            return  # the same record, already with its MLflow run (logged meanwhile)
        if here != record:
            with contextlib.suppress(OSError):
                super().write_record(record)

    def write_record(self, record: dict[str, Any]) -> Path:
        path = self.record_path(record["cell_id"])
        if self.files:
            path = super().write_record(record)
        self.cells.update_record(self.spec_name, record)
        return path

    def checkpoint_dir(self, cell_id: str) -> Path:
        """In the results folder, or (a worker that cannot reach it) a local temp folder."""
        if self.files:
            return super().checkpoint_dir(cell_id)
        import tempfile

        return Path(tempfile.gettempdir()) / "harness-checkpoints" / self.spec_name / cell_id

    def journal(self, event: str, cell_id: str | None = None, **fields: Any) -> None:
        if self.files:
            super().journal(event, cell_id, **fields)

    def read_tracking(self) -> dict[str, Any]:
        state = self.cells.read_tracking(self.spec_name)
        if not state and self.files:
            state = super().read_tracking()
        return state

    def write_tracking(self, state: dict[str, Any]) -> None:
        self.cells.write_tracking(self.spec_name, state)
        if self.files:
            with contextlib.suppress(OSError):
                super().write_tracking(state)
