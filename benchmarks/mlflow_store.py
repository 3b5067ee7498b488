"""A new MLflow SQLite store: MLflow's own schema migrations against the copy of the cached
empty store that ``harness run`` makes (``harness.tracking.create_sqlite_store``), timed
in one run, alternating.

Usage:  python benchmarks/mlflow_store.py [--repeat 3]

The cache is a temporary folder, so the first copy includes making the template (its
time is printed apart).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["HARNESS_CACHE_DIR"] = str(root / "cache")
        from harness.tracking import _migrate, create_sqlite_store

        start = time.perf_counter()
        create_sqlite_store(root / "first" / "mlflow.db")
        print(f"first store (makes the template): {time.perf_counter() - start:.3f} s")
        migrate, copy = [], []
        for i in range(args.repeat):
            folder = root / f"migrate{i}"
            folder.mkdir()
            start = time.perf_counter()
            _migrate(folder / "mlflow.db")
            migrate.append(time.perf_counter() - start)
            start = time.perf_counter()
            create_sqlite_store(root / f"copy{i}" / "mlflow.db")
            copy.append(time.perf_counter() - start)
        print(f"MLflow's migrations: {', '.join(f'{t:.3f}' for t in migrate)} s "
              f"(median {statistics.median(migrate):.3f})")
        print(f"copy of the template: {', '.join(f'{t:.3f}' for t in copy)} s "
              f"(median {statistics.median(copy):.3f})")


if __name__ == "__main__":
    main()
