"""Cell groups: a spec run as groups (the default) against every cell as its own program,
in one run of this script, with the records and the report compared.

Usage:  python benchmarks/groups_speed.py [--specs specs/logistic.yaml specs/grid_rl.yaml
            specs/logistic_tuned.yaml] [--no-ungrouped] [--before CHECKOUT]
            [--ungrouped-workers 2] [--set KEY=VALUE ...] [--json FILE]

For each spec it times, in scratch folders, `harness run SPEC --fresh` with the defaults
(groups, workers chosen from the grid and the cores) and, unless `--no-ungrouped`,
`harness run SPEC --fresh --no-groups --workers N` (each cell and tuning trial its own
program, N worker processes: how a spec ran before groups), both with MLflow tracking and
the report as a user runs them; `--before CHECKOUT` adds the same spec run by another
checkout of the harness (e.g. the main branch before groups: `git worktree add
/tmp/before main`), with `--workers N`. Then it compares each run's records with the
grouped run's: the same cell ids, every metric and chosen lambda equal (bit for bit),
and report.md byte-identical.
Prints the wall times and their ratios; the targets are the Figure 1 spec in at most 20 s
and the Figure 2 spec in at most 10 s on a 2-core machine, and the tuned spec at least 3x
faster than before. On a machine shared with other jobs the ratios are what count.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from sweep_timer import finish, into, timed  # benchmarks/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
TARGETS_S = {"logistic": 20.0, "grid_rl": 10.0}


def harness_run(spec: Path, scratch: Path, extra: list[str], checkout: Path | None = None
                ) -> float:
    """Wall seconds of a fresh `harness run` of ``spec`` in ``scratch`` (by ``checkout``'s
    harness when given)."""
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        env.pop(name, None)
    if checkout is not None:
        env["PYTHONPATH"] = str(checkout)
    return timed([sys.executable, "-m", "harness.cli", "run", str(spec), "--fresh", *extra,
                  *into(scratch)], scratch, env)


def records(scratch: Path) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in scratch.rglob("cells/*.json")}


def compare(grouped: Path, other: Path) -> dict[str, Any]:
    """Cell ids, metrics, lambdas and report.md of ``other`` against ``grouped``."""
    a, b = records(grouped), records(other)
    same_metrics = [k for k in a if k in b and a[k]["metrics"] == b[k]["metrics"]]
    same_lambda = [k for k in a if k in b and a[k]["lambda"] == b[k]["lambda"]]
    # the results folder's report (MLflow keeps a copy among its artifacts)
    reports = [sorted(grouped.glob("results/*/report.md")),
               sorted(other.glob("results/*/report.md"))]
    report_same = (len(reports[0]) == len(reports[1]) == 1
                   and reports[0][0].read_bytes() == reports[1][0].read_bytes())
    out = {"cells": len(a), "same_ids": set(a) == set(b),
           "metrics_equal": len(same_metrics), "lambdas_equal": len(same_lambda),
           "report_identical": report_same}
    if not report_same and len(reports[0]) == len(reports[1]) == 1:  # say where
        lines = [r[0].read_text(encoding="utf-8").splitlines() for r in reports]
        out["report_diff"] = [line for line in difflib.unified_diff(*lines, lineterm="", n=0)
                              if line[:1] in "+-" and line[:3] not in ("+++", "---")][:6]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--specs", nargs="+", type=Path, default=[
        ROOT / "specs" / "logistic.yaml", ROOT / "specs" / "grid_rl.yaml",
        ROOT / "specs" / "logistic_tuned.yaml"])
    parser.add_argument("--before", type=Path, default=None, metavar="CHECKOUT")
    parser.add_argument("--no-ungrouped", action="store_true")
    parser.add_argument("--ungrouped-workers", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="passed to every run (e.g. task.params.epochs=500)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    sets = [part for item in args.set for part in ("--set", item)]
    result: dict[str, Any] = {"cores": os.cpu_count(), "load_before": os.getloadavg(),
                              "specs": {}}
    for spec in args.specs:
        spec = spec.resolve()
        with tempfile.TemporaryDirectory() as tmp:
            base = Path(tmp)
            runs: dict[str, tuple[list[str], Path | None]] = {"grouped": ([], None)}
            if not args.no_ungrouped:
                runs["ungrouped"] = (["--no-groups", "--workers",
                                      str(args.ungrouped_workers)], None)
            if args.before is not None:
                runs["before"] = (["--workers", str(args.ungrouped_workers)],
                                  args.before.resolve())
            times, checks = {}, {}
            for name, (extra, checkout) in runs.items():
                (base / name).mkdir()
                times[name] = harness_run(spec, base / name, extra + sets, checkout)
            for name in runs:
                if name != "grouped":
                    checks[name] = compare(base / "grouped", base / name)
        result["specs"][spec.name] = {"wall_s": times, "checks": checks}
        line = ", ".join(f"{k} {v:.1f} s" for k, v in times.items())
        print(f"{spec.name}: {line}")
        for name, check in checks.items():
            print(f"  {name}/grouped = {times[name] / times['grouped']:.2f}x; {check}")
        target = TARGETS_S.get(spec.stem)
        if target is not None and not sets:
            verdict = "within" if times["grouped"] <= target else "OVER"
            print(f"  grouped {times['grouped']:.1f} s: {verdict} the {target:.0f} s target")
    finish(result, args.json)


if __name__ == "__main__":
    main()
