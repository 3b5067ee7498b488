"""The Ray executor's overhead on the Figure 1 sweep (specs/logistic.yaml, 32 cells):
`harness run --workers 2` (the local executor) against `harness run --executor ray
--address` of a 2-node Ray cluster started here by hand on 127.0.0.1 (a head and a worker
node, one CPU each: the same two cells at a time), in one run of this script, alternating
local and Ray runs so that the shared machine's noise falls on both alike.

Each run is a fresh `harness run` in a scratch folder (MLflow tracking off, no report:
the executor is what is measured). The records' metrics of every Ray run are checked to
be bit for bit those of the local run. Prints one JSON line and a Markdown row.

    python benchmarks/ray_overhead.py [--spec specs/logistic.yaml] [--pairs 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from servers import RayNode, wait_for_nodes  # noqa: E402


def run(spec: Path, scratch: Path, extra: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(process wall seconds, the sweep's own seconds from its summary line)."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", str(spec), "--no-report",
         "--set", "tracking.enabled=false", "--set", f"output_dir={scratch}", *extra],
        cwd=scratch, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", **env},
        capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"harness run {' '.join(extra)} failed ({proc.returncode}):\n"
                 f"{proc.stderr[-3000:]}")
    line = next(x for x in proc.stdout.splitlines() if " ok, " in x)
    return wall, float(line.rsplit(" in ", 1)[1].rstrip("s"))


def metrics(folder: Path) -> dict[str, object]:
    return {p.stem: json.loads(p.read_text())["metrics"]
            for p in folder.glob("*/cells/*.json")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(ROOT / "specs" / "logistic.yaml"))
    parser.add_argument("--pairs", type=int, default=1, help="local/Ray pairs to alternate")
    args = parser.parse_args()
    spec = Path(args.spec).resolve()

    clock = time.perf_counter()
    head = RayNode(cpus=1)
    worker = None
    try:
        worker = RayNode(cpus=1, head=head)
        wait_for_nodes(head, 2)
        cluster_s = time.perf_counter() - clock
        rows = []
        for _ in range(args.pairs):
            with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
                local = run(spec, Path(a), ["--workers", "2"], {})
                ray = run(spec, Path(b), ["--executor", "ray", "--address", head.address],
                          head.env)
                same = metrics(Path(a)) == metrics(Path(b)) and bool(metrics(Path(a)))
                rows.append({"local_wall_s": round(local[0], 1),
                             "local_sweep_s": round(local[1], 1),
                             "ray_wall_s": round(ray[0], 1), "ray_sweep_s": round(ray[1], 1),
                             "ratio_wall": round(ray[0] / local[0], 3),
                             "ratio_sweep": round(ray[1] / local[1], 3),
                             "identical_metrics": same})
    finally:
        if worker is not None:
            worker.stop()
        head.stop()
    out = {"spec": str(spec.relative_to(ROOT)) if spec.is_relative_to(ROOT) else str(spec),
           "cluster": "2 Ray nodes (head + worker, 1 CPU each) on 127.0.0.1",
           "cluster_start_s": round(cluster_s, 1), "pairs": rows,
           "cores": len(os.sched_getaffinity(0))}
    print(json.dumps(out))
    for r in rows:
        print(f"| local --workers 2 | {r['local_wall_s']} s ({r['local_sweep_s']} s sweep) | "
              f"Ray 2 nodes | {r['ray_wall_s']} s ({r['ray_sweep_s']} s sweep) | "
              f"x{r['ratio_wall']} (x{r['ratio_sweep']} sweep) | identical: "
              f"{r['identical_metrics']} |")


if __name__ == "__main__":
    main()
