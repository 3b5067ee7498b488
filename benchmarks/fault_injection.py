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

Usage: python benchmarks/fault_injection.py [--spec specs/logistic.yaml] [--kills 20]
       [--interrupts 5] [--workers 2] [--seed 0] [--json FILE] [--keep]
       (--workers 0: leave --workers out, the default workers)
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


def run(spec: Path, cwd: Path, output: str, workers: int) -> subprocess.Popen:
    """Start one run; its stderr goes to <cwd>/logs/<output>-<n>.err (warnings kept)."""
    chosen = ["--workers", str(workers)] if workers > 0 else []  # 0: the default
    command = [*HARNESS, "run", str(spec), *chosen, "--set", f"output_dir={output}"]
    logs = cwd / "logs"
    logs.mkdir(exist_ok=True)
    err = logs / f"{output}-{len(list(logs.glob(output + '-*.err'))):02d}.err"
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
        "report_md_identical": (root / "report.md").read_bytes()
        == (ref / "report.md").read_bytes(),
        "report_csv_identical": (root / "report.csv").read_bytes()
        == (ref / "report.csv").read_bytes(),
        "reference_s": round(reference_s, 1),
        "median_cell_s": round(median_cell, 1),
        "interrupted_s": round(faulty_s, 1),
        "warnings": warnings_of(scratch),
        "runs_with_a_traceback": sum("Traceback" in err.read_text(errors="replace")
                                     for err in (scratch / "logs").glob("*.err")),
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    if not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)
    else:
        print(f"kept {scratch}")
    ok = (final == 0 and figures["cells_lost"] == 0 and figures["cells_computed_twice"] == 0
          and figures["cells_with_two_mlflow_runs"] == 0 and figures["processes_left_behind"] == 0
          and figures["cells_without_mlflow_run"] == 0 and figures["runs_with_a_traceback"] == 0
          and figures["report_md_identical"] and figures["report_csv_identical"])
    return 0 if ok else 1


def _spec_name(path: Path) -> str:
    import yaml

    return yaml.safe_load(path.read_text())["name"]


if __name__ == "__main__":
    sys.exit(main())
