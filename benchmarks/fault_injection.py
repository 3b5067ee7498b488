"""Fault benchmark: the Figure 1 sweep interrupted at random moments, resumed each time.

The sweep (``specs/logistic.yaml`` by default, MLflow tracking on, ``--workers 2``) is
started, killed with SIGKILL at ``--kills`` random moments and with SIGINT at
``--interrupts`` (in a shuffled order), restarted each time, and finally run to
completion. The moments fall all along the sweep whatever the machine's speed: fault i
comes once a random number of cells (drawn uniformly over the grid, sorted) is recorded,
plus a random delay of up to one median cell time of the reference, so it strikes at any
point of a cell, of a worker's start-up or of the recording. An uninterrupted run of the
same spec is the reference. Printed:

- cells lost: grid cells without a final record at the end (must be 0);
- cells computed twice: cells whose record was written more than once (journal.jsonl,
  must be 0), and cells with more than one MLflow child run (must be 0) or none (must
  be 0: a cell recorded while tracking was interrupted is logged on resume);
- computations cut short: cells started but killed before their record (the price of
  the faults, recomputed on resume);
- processes left behind 3 s after each fault (workers must die with their parent);
- whether the final report.md and report.csv equal the uninterrupted run's byte for byte;
- the distinct warning lines the runs printed on stderr (kept under logs/ with --keep),
  and how many runs printed a traceback (must be 0, workers of a killed run included).

With ``--db-restarts N`` it measures the shared store instead: a PostgreSQL server is
started here (127.0.0.1, as the tests start one), the sweep runs with ``--store`` as a
driver (``harness run --workers W``) beside ``--store-workers`` ``harness worker``
processes, and the database is restarted N times mid-sweep (``pg_ctl stop -m fast``: every
session is terminated, as in a failover; down ``--down-s`` seconds; started again), each
once a random number of cells is recorded plus a random delay. Printed: cells lost (grid
cells not done in the store or without a record in the folder), cells recorded twice
(the store's 'recorded' events), late results refused (computed twice, recorded once),
exit codes, runs that printed a traceback, warnings, and whether report.md and report.csv
equal the uninterrupted run's.

Usage: python benchmarks/fault_injection.py [--spec specs/logistic.yaml] [--kills 20]
       [--interrupts 5] [--workers 2] [--seed 0] [--json FILE] [--keep]
       (--workers 0: leave --workers out, the default workers)
       python benchmarks/fault_injection.py --db-restarts 5 [--store-workers 2]
       [--down-s 1] [--workers 2] [--seed 0] [--json FILE] [--keep]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.testing.processes import live_processes

REPO = Path(__file__).resolve().parents[1]
HARNESS = [sys.executable, "-m", "harness.cli"]


def run(spec: Path, cwd: Path, output: str, workers: int, store: str | None = None
        ) -> subprocess.Popen:
    """Start one run; its stderr goes to <cwd>/logs/<output>-<n>.err (warnings kept)."""
    chosen = ["--workers", str(workers)] if workers > 0 else []  # 0: the default
    command = [*HARNESS, "run", str(spec), *chosen, "--set", f"output_dir={output}",
               *(["--store", store] if store else [])]
    return _start(command, cwd, output)


def _start(command: list[str], cwd: Path, name: str) -> subprocess.Popen:
    logs = cwd / "logs"
    logs.mkdir(exist_ok=True)
    err = logs / f"{name}-{len(list(logs.glob(name + '-*.err'))):02d}.err"
    with err.open("w") as sink:
        return subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=sink,
                                start_new_session=True,
                                env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})


def warnings_of(cwd: Path) -> list[str]:
    """The distinct warning lines the runs printed (e.g. a failed MLflow logging)."""
    lines = {line.strip() for err in sorted((cwd / "logs").glob("*.err"))
             for line in err.read_text(errors="replace").splitlines()
             if line.startswith(("warning", "error", "Traceback"))}
    return sorted(lines)


def journal(root: Path) -> list[dict]:
    path = root / "journal.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def recorded_cells(root: Path) -> int:
    return len({e["cell_id"] for e in journal(root) if e["event"] == "recorded"})


def mlflow_runs_per_cell(db: Path) -> collections.Counter:
    if not db.exists():
        return collections.Counter()
    rows = sqlite3.connect(db).execute(
        "select value from tags where key = 'cell_id'").fetchall()
    return collections.Counter(v for (v,) in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(REPO / "specs" / "logistic.yaml"))
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--interrupts", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--json", default=None, help="also write the figures here")
    parser.add_argument("--db-restarts", type=int, default=0,
                        help="measure the PostgreSQL store instead: restart its database "
                        "this many times mid-sweep")
    parser.add_argument("--store-workers", type=int, default=2,
                        help="`harness worker` processes beside the driver (--db-restarts)")
    parser.add_argument("--down-s", type=float, default=1.0,
                        help="seconds the database stays down at each restart")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="harness-faults-"))
    spec = scratch / "spec.yaml"
    shutil.copy(args.spec, spec)
    name = _spec_name(spec)
    clock = time.monotonic()
    print(f"reference: uninterrupted run of {args.spec} ({args.workers} workers)...",
          flush=True)
    assert run(spec, scratch, "reference", args.workers).wait() == 0
    reference_s = time.monotonic() - clock
    times = sorted(json.loads(p.read_text())["timings"]["train_s"]
                   for p in (scratch / "reference" / name / "cells").glob("*.json"))
    median_cell = times[len(times) // 2]
    print(f"reference: {reference_s:.1f}s, {len(times)} cells, median cell {median_cell:.1f}s",
          flush=True)

    if args.db_restarts:
        figures = db_restarts(args, spec, scratch, name, times, median_cell, reference_s)
        return _finish(args, scratch, figures)

    rng = random.Random(args.seed)
    faults = ["SIGKILL"] * args.kills + ["SIGINT"] * args.interrupts
    rng.shuffle(faults)
    thresholds = sorted(rng.randrange(len(times)) for _ in faults)
    root = scratch / "faulty" / name
    left_behind = []
    codes = collections.Counter()
    clock = time.monotonic()
    for i, (fault, threshold) in enumerate(zip(faults, thresholds, strict=True), 1):
        proc = run(spec, scratch, "faulty", args.workers)
        while proc.poll() is None and recorded_cells(root) < threshold:
            time.sleep(0.05)
        delay = rng.uniform(0.0, median_cell)
        try:
            proc.wait(delay)
            codes["finished before the fault"] += 1
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, getattr(signal, fault))
            proc.wait()
            codes[fault] += 1
        time.sleep(3.0)
        left_behind.append(len(live_processes(group=proc.pid)))
        print(f"fault {i:2d}/{len(faults)}: {fault:7s} once {threshold} cells were recorded, "
              f"+{delay:4.1f}s -> {recorded_cells(root)} recorded, {left_behind[-1]} "
              "processes left", flush=True)
    final = run(spec, scratch, "faulty", args.workers).wait()
    faulty_s = time.monotonic() - clock

    ref = scratch / "reference" / name
    grid = json.loads((root / "grid.json").read_text())["cells"]
    events = journal(root)
    recorded = collections.Counter(e["cell_id"] for e in events if e["event"] == "recorded")
    started = collections.Counter(e["cell_id"] for e in events if e["event"] == "started")
    runs = mlflow_runs_per_cell(scratch / "faulty" / "mlflow.db")
    figures = {
        "cells": len(grid),
        "faults": dict(codes),
        "final_exit_code": final,
        "cells_lost": sum(not (root / "cells" / f"{c}.json").exists() for c in grid),
        "cells_computed_twice": sum(n > 1 for n in recorded.values()),
        "cells_with_two_mlflow_runs": sum(n > 1 for n in runs.values()),
        "cells_without_mlflow_run": sum(c not in runs for c in grid),
        "computations_cut_short": sum(started.values()) - sum(recorded.values()),
        "processes_left_behind": sum(left_behind),
        **_reports_identical(root, ref),
        "reference_s": round(reference_s, 1),
        "median_cell_s": round(median_cell, 1),
        "interrupted_s": round(faulty_s, 1),
        "warnings": warnings_of(scratch),
        "runs_with_a_traceback": _tracebacks(scratch),
    }
    figures["ok"] = (final == 0 and figures["cells_lost"] == 0
                     and figures["cells_computed_twice"] == 0
                     and figures["cells_with_two_mlflow_runs"] == 0
                     and figures["processes_left_behind"] == 0
                     and figures["cells_without_mlflow_run"] == 0
                     and figures["runs_with_a_traceback"] == 0
                     and figures["report_md_identical"] and figures["report_csv_identical"])
    return _finish(args, scratch, figures)


def _finish(args: argparse.Namespace, scratch: Path, figures: dict) -> int:
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    if not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)
    else:
        print(f"kept {scratch}")
    return 0 if figures["ok"] else 1


def _reports_identical(root: Path, ref: Path) -> dict[str, bool]:
    return {f"report_{kind}_identical": (root / f"report.{kind}").is_file()
            and (root / f"report.{kind}").read_bytes() == (ref / f"report.{kind}").read_bytes()
            for kind in ("md", "csv")}


def _tracebacks(scratch: Path) -> int:
    return sum("Traceback" in err.read_text(errors="replace")
               for err in (scratch / "logs").glob("*.err"))


def store_events(url: str, spec: str, kind: str) -> list[str] | None:
    """The cell ids of the store's ``kind`` events, or None while the server is down."""
    import psycopg

    from harness.runner.dbstore import conninfo

    try:
        with psycopg.connect(conninfo(url), autocommit=True, connect_timeout=5) as conn:
            rows = conn.execute("SELECT cell_id FROM harness_events WHERE spec = %s AND "
                                "event = %s ORDER BY id", (spec, kind)).fetchall()
    except psycopg.Error:
        return None
    return [r[0] for r in rows]


def db_restarts(args: argparse.Namespace, spec: Path, scratch: Path, name: str,
                times: list[float], median_cell: float, reference_s: float) -> dict:
    """The store mode (see the module docstring): its figures."""
    sys.path.insert(0, str(REPO / "tests"))
    from servers import Postgres  # the tests' throwaway server, on 127.0.0.1

    server = Postgres()
    try:
        url = server.create_db("faults")
        rng = random.Random(args.seed)
        thresholds = sorted(rng.randrange(1, len(times)) for _ in range(args.db_restarts))
        enqueue = subprocess.run([*HARNESS, "run", str(spec), "--store", url, "--enqueue",
                                  "--set", "output_dir=faulty"], cwd=scratch,
                                 capture_output=True, text=True)
        assert enqueue.returncode == 0, enqueue.stderr
        clock = time.monotonic()
        workers = [_start([*HARNESS, "worker", "--store", url, "--until-empty", "--poll",
                           "0.2"], scratch, f"worker{i}") for i in range(args.store_workers)]
        driver = run(spec, scratch, "faulty", args.workers, store=url)
        restarts = []
        for i, threshold in enumerate(thresholds, 1):
            while driver.poll() is None and len(store_events(url, name, "recorded") or []
                                                ) < threshold:
                time.sleep(0.1)
            if driver.poll() is not None:
                break
            delay = rng.uniform(0.0, median_cell)
            time.sleep(delay)
            server.restart(down_s=args.down_s)
            restarts.append(threshold)
            print(f"restart {i}/{len(thresholds)}: once {threshold} cells were recorded, "
                  f"+{delay:4.1f}s, down {args.down_s:.1f}s", flush=True)
        codes = {"driver": driver.wait()}
        codes.update({f"worker{i}": w.wait() for i, w in enumerate(workers)})
        faulty_s = time.monotonic() - clock
        root, ref = scratch / "faulty" / name, scratch / "reference" / name
        grid = json.loads((root / "grid.json").read_text())["cells"]
        recorded = collections.Counter(store_events(url, name, "recorded") or [])
        claimed = store_events(url, name, "claimed") or []
        import psycopg

        from harness.runner.dbstore import conninfo

        with psycopg.connect(conninfo(url), autocommit=True) as conn:
            done = {r[0] for r in conn.execute(
                "SELECT cell_id FROM harness_cells WHERE spec = %s AND state = 'done'",
                (name,)).fetchall()}
        runs = mlflow_runs_per_cell(scratch / "faulty" / "mlflow.db")
        figures = {
            "mode": "database restarts",
            "cells": len(grid),
            "restarts": len(restarts),
            "exit_codes": codes,
            "cells_lost": sum(c not in done or not (root / "cells" / f"{c}.json").exists()
                              for c in grid),
            "cells_recorded_twice": sum(n > 1 for n in recorded.values()),
            "late_results_refused": len(store_events(url, name, "refused") or []),
            "claims_given_back_or_cut_short": len(claimed) - sum(recorded.values()),
            "cells_with_two_mlflow_runs": sum(n > 1 for n in runs.values()),
            "cells_without_mlflow_run": sum(c not in runs for c in grid),
            **_reports_identical(root, ref),
            "reference_s": round(reference_s, 1),
            "median_cell_s": round(median_cell, 1),
            "restarted_s": round(faulty_s, 1),
            "warnings": warnings_of(scratch),
            "runs_with_a_traceback": _tracebacks(scratch),
        }
    finally:
        server.stop()
    figures["ok"] = (set(codes.values()) == {0} and figures["cells_lost"] == 0
                     and figures["cells_recorded_twice"] == 0
                     and figures["runs_with_a_traceback"] == 0
                     and figures["cells_with_two_mlflow_runs"] == 0
                     and figures["cells_without_mlflow_run"] == 0
                     and figures["report_md_identical"] and figures["report_csv_identical"])
    return figures


def _spec_name(path: Path) -> str:
    import yaml

    return yaml.safe_load(path.read_text())["name"]


if __name__ == "__main__":
    sys.exit(main())
