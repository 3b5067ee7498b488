"""MLflow tracking: one parent run per spec, one nested child run per cell.

Logging happens in the main process when a record is written; the child run's id is then
written into the record, so a record without one (tracking was off, or the process died in
between) is logged on the next resume instead of being recomputed. mlflow is imported only
when tracking is enabled: it takes seconds to import.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.runner.store import ResultsStore

STATS = ("mean", "median", "p10", "p90")
PARENT_TAG = "mlflow.parentRunId"
MAX_KEY = 250
MAX_PARAM = 6000
MAX_TAG = 8000
BATCH = 100


def tracking_uri(spec: Any, override: str | None = None) -> str:
    """--tracking-uri, then the spec's tracking.uri, else sqlite:///<output_dir>/mlflow.db."""
    if override:
        return override
    if spec.tracking.uri:
        return spec.tracking.uri
    return f"sqlite:///{(Path(spec.output_dir) / 'mlflow.db').resolve()}"


def flatten(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """Dotted keys with string values (lists as JSON), e.g. ("task.params.epochs", "20")."""
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from flatten(value, f"{name}.")
        elif isinstance(value, str):
            yield name, value
        else:
            yield name, json.dumps(value, sort_keys=True)


def _ms(iso: str | None) -> int | None:
    return int(datetime.fromisoformat(iso).timestamp() * 1000) if iso else None


def _chunks(items: list[Any]) -> Iterator[list[Any]]:
    for i in range(0, len(items), BATCH):
        yield items[i : i + BATCH]


class Tracker:
    """Logs a spec's cells to MLflow under one parent run (reused across resumes)."""

    def __init__(self, spec: Any, store: ResultsStore, uri: str) -> None:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
        from mlflow import MlflowClient

        self.uri = uri
        self.spec_name = spec.name
        self.client = MlflowClient(tracking_uri=uri)
        self.store = store
        experiment = spec.tracking.experiment or spec.name
        found = self.client.get_experiment_by_name(experiment)
        self.experiment_id = (found.experiment_id if found is not None
                              else self.client.create_experiment(experiment))
        self.parent_id = self._parent_run(spec)

    def _parent_run(self, spec: Any) -> str:
        """The run id saved in tracking.json if it still exists in this store, else a new one."""
        state = self.store.read_tracking()
        run_id = state.get("parent_run_id")
        if run_id and state.get("uri") == self.uri:
            try:
                run = self.client.get_run(run_id)
            except Exception:  # noqa: BLE001 - deleted or from another store: start anew
                run = None
            if run is not None and run.info.experiment_id == self.experiment_id:
                self.client.update_run(run_id, status="RUNNING")
                return run_id
        run = self.client.create_run(
            self.experiment_id, run_name=spec.name,
            tags={"spec": spec.name, "task": spec.task.name},
        )
        self.client.log_batch(run.info.run_id, params=self._params({
            "task.name": spec.task.name, "metric": spec.metric, "runs": spec.runs,
            "sizes": spec.sizes, "seeds": spec.seeds, "methods": [m.display for m in spec.methods],
        }))
        self.store.write_tracking({"uri": self.uri, "experiment_id": self.experiment_id,
                                   "parent_run_id": run.info.run_id})
        return run.info.run_id

    def log_cell(self, record: dict[str, Any]) -> str:
        """Log one record as a child run; return the run id."""
        from mlflow.entities import Metric, RunTag

        tags = {
            PARENT_TAG: self.parent_id,
            "mlflow.runName": f"{record['label']}-size{record['size']}-seed{record['seed']}",
            "spec": self.spec_name,
            "cell_id": record["cell_id"],
            "label": record["label"],
            "status": record["status"],
            "git_commit": record.get("git_commit") or "",
            "reason": record.get("reason") or "",
        }
        if record["status"] == "skipped":
            tags["skipped"] = "true"
        start, end = _ms(record.get("started")), _ms(record.get("finished"))
        run = self.client.create_run(self.experiment_id, start_time=start, tags=tags)
        run_id = run.info.run_id
        values = {f"{metric}_{stat}": stats[stat]
                  for metric, stats in record.get("summary", {}).items() for stat in STATS}
        if record.get("lambda") is not None:
            values["lambda"] = record["lambda"]
        metrics = [Metric(k[:MAX_KEY], float(v), end or 0, 0) for k, v in values.items()]
        params = self._params({**dict(flatten(record["config"])),
                               "lambda": record.get("lambda"),
                               "lambda_source": record.get("lambda_source")})
        for i, chunk in enumerate(_chunks(params)):
            self.client.log_batch(run_id, metrics=metrics if i == 0 else [], params=chunk)
        if record.get("traceback"):
            trace = record["traceback"][-MAX_TAG:]
            self.client.log_batch(run_id, tags=[RunTag("traceback", trace)])
        status = "FAILED" if record["status"] == "failed" else "FINISHED"
        self.client.set_terminated(run_id, status=status, end_time=end)
        return run_id

    def close(self, failed: bool) -> None:
        self.client.set_terminated(self.parent_id, status="FAILED" if failed else "FINISHED")

    @staticmethod
    def _params(values: Mapping[str, Any]) -> list[Any]:
        from mlflow.entities import Param

        out = []
        for key, value in values.items():
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            out.append(Param(key[:MAX_KEY], text[:MAX_PARAM]))
        return out


def open_tracker(spec: Any, store: ResultsStore, override: str | None = None
                 ) -> Tracker | None:
    """A Tracker, or None when tracking is disabled or MLflow cannot be reached (the sweep
    still runs; records without a run id are logged on a later resume)."""
    if not spec.tracking.enabled:
        return None
    uri = tracking_uri(spec, override)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        return Tracker(spec, store, uri)
    except Exception as exc:  # noqa: BLE001 - tracking must never cost results
        print(f"warning: MLflow tracking at {uri} unavailable ({type(exc).__name__}: "
              f"{' '.join(str(exc).split())[:300]}); continuing without it", file=sys.stderr)
        return None
