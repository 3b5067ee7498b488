"""Helpers of the cluster tests: the servers' fixtures, specs of many small cells, and
reads of the store's tables."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from servers import Postgres, RayNode, ray_missing

REQUIRE_ENV = "HARNESS_REQUIRE_CLUSTER"  # set by .ci/run: a missing server fails, not skips


def _missing(why: str | None) -> None:
    if why and os.environ.get(REQUIRE_ENV):
        pytest.fail(f"cluster test {why} (${REQUIRE_ENV} is set)")
    if why:
        pytest.skip(f"cluster test {why}")


def need_postgres() -> None:
    _missing(Postgres.missing())


def need_ray() -> None:
    _missing(ray_missing())


@pytest.fixture(scope="module")
def postgres():
    need_postgres()
    server = Postgres()
    yield server
    server.stop()


_dbs = iter(range(10_000))


@pytest.fixture
def store(postgres) -> str:
    """A fresh database on the module's server: its --store URL."""
    return postgres.create_db(f"t{next(_dbs)}_{int(time.time() * 1000) % 10**8}")


@pytest.fixture(scope="module")
def ray_head():
    """One Ray head on 127.0.0.1 with 2 CPUs and 2 logical GPUs (there are none)."""
    need_ray()
    node = RayNode(cpus=2, gpus=2)
    yield node
    node.stop()


def write_spec(folder: Path, name: str = "grid", *, sizes: list[int] | None = None,
               seeds: list[int] | None = None, epochs: int = 40, runs: int = 4,
               tracking: bool = False, **extra: Any) -> Path:
    """A logistic spec in ``folder``: baseline and imm at ``sizes`` x ``seeds``."""
    spec = {
        "name": name,
        "task": {"name": "logistic", "params": {"epochs": epochs}},
        "methods": [{"name": "baseline"},
                    {"name": "imm_sampled", "label": "imm", "lambda": 1.0}],
        "sizes": sizes or [2, 5], "seeds": seeds or [0, 1], "runs": runs,
        "tracking": {"enabled": tracking},
        **extra,
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def db(url: str) -> Any:
    import psycopg

    from harness.runner.dbstore import conninfo

    return psycopg.connect(conninfo(url), autocommit=True)


def events(url: str, spec: str, kind: str | None = None) -> list[dict[str, Any]]:
    sql = "SELECT cell_id, event, owner, attempt FROM harness_events WHERE spec = %s"
    params: tuple[Any, ...] = (spec,)
    if kind:
        sql += " AND event = %s"
        params += (kind,)
    with db(url) as conn:
        try:
            rows = conn.execute(sql + " ORDER BY id", params).fetchall()
        except Exception:  # noqa: BLE001 - tables not made yet
            return []
    return [dict(zip(("cell_id", "event", "owner", "attempt"), r, strict=True)) for r in rows]


def states(url: str, spec: str) -> dict[str, str]:
    with db(url) as conn:
        rows = conn.execute("SELECT cell_id, state FROM harness_cells WHERE spec = %s",
                            (spec,)).fetchall()
    return dict(rows)


def records(results: Path) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in (results / "cells").glob("*.json")}


def metrics(results: Path) -> dict[str, Any]:
    return {cid: r["metrics"] for cid, r in records(results).items()}


def recorded_once(url: str, spec: str, cells: int) -> bool:
    ids = [e["cell_id"] for e in events(url, spec, "recorded")]
    return len(ids) == cells and len(set(ids)) == cells
