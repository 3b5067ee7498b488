"""MLflow tracking: one parent run per spec, one nested child run per cell.

A child run holds the cell's config as params, the summary statistics of its metrics,
its learning curves as step metrics (``train_loss``, ``val_ppl``, ... per epoch, from the
record's ``curves``, which MLflow's UI charts; no figure of them is drawn here: about
0.12 s of CPU each, in the process that may be computing cells), and as an artifact its
record (``record.json``). The parent run holds the spec as run (``spec.yaml``) and, after
the run, its report (``report/``: report.html, report.md, report.csv and the figures).
With the default SQLite store, artifacts go to ``<output_dir>/mlartifacts/`` beside
``mlflow.db`` (MLflow's own default, ``./mlruns``, would depend on the current folder).

Logging happens in the main process when a record is written, while the cell's claim is
held; the child run's id is then written into the record, so a record without one
(tracking was off, or the process died in between) is logged on the next resume instead
of being recomputed. Logging is idempotent: a cell's child run is found by its
``cell_id`` tag before one is created, so resumes and concurrent runs of one spec give one
MLflow run per cell. The parent run is created under a claim of its own.

An ``http(s)`` tracking server is probed first (``/health``, 5 s): when it cannot be
reached the sweep goes on untracked with one warning, and its records are logged on a
later resume. mlflow is imported only when tracking is enabled: it takes seconds to
import.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.masking import mask, strip_credentials, url_secret
from harness.runner.store import ResultsStore

STATS = ("mean", "median", "p10", "p90")
PARENT_TAG = "mlflow.parentRunId"
MAX_KEY = 250
MAX_PARAM = 6000
MAX_TAG = 8000
BATCH = 100
METRIC_BATCH = 1000  # MLflow takes at most 1000 metrics a batch
ARTIFACTS_DIR = "mlartifacts"
PROBE_TIMEOUT_S = 5.0
QUIET_LOGGERS = ("mlflow", "alembic", "sqlalchemy", "urllib3")


def quiet_mlflow_loggers() -> None:
    """Silence MLflow's loggers and those of its libraries; call after importing mlflow,
    which configures its own."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)


def tracking_uri(spec: Any, override: str | None = None) -> str:
    """--tracking-uri, then the spec's tracking.uri, else sqlite:///<output_dir>/mlflow.db."""
    from harness.spec.paths import output_root

    if override:
        return override
    if spec.tracking.uri:
        return spec.tracking.uri
    return f"sqlite:///{output_root(spec) / 'mlflow.db'}"


def artifact_location(uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: beside a SQLite store's database; for
    servers and other stores, their own default (None)."""
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).parent / ARTIFACTS_DIR).as_uri()
    return None


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

    def __init__(self, spec: Any, store: ResultsStore, uri: str, claims: Any = None) -> None:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        from mlflow import MlflowClient

        quiet_mlflow_loggers()

        self.uri = uri
        self.spec_name = spec.name
        self.client = MlflowClient(tracking_uri=uri)
        self.store = store
        experiment = spec.tracking.experiment or spec.name
        claim = _wait_for(claims, "tracking")
        try:
            found = self.client.get_experiment_by_name(experiment)
            self.experiment_id = (found.experiment_id if found is not None else
                                  self.client.create_experiment(
                                      experiment, artifact_location=artifact_location(uri)))
            self.parent_id = self._parent_run(spec)
        finally:
            if claim is not None:
                claims.release(claim)

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
        self.client.log_dict(run.info.run_id, spec.model_dump(mode="json", by_alias=True),
                             "spec.yaml")
        self.store.write_tracking({"uri": self.uri, "experiment_id": self.experiment_id,
                                   "parent_run_id": run.info.run_id})
        return run.info.run_id

    def existing_run(self, record: dict[str, Any]) -> str | None:
        """The id of the child run already logged for this very record (same cell, same
        parent run, same finish time), if any: a resume or a concurrent run that logs it
        again finds it instead of logging a duplicate. A recomputed cell (a retry, or
        after --fresh) is a new record and gets a run of its own."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=(f"tags.cell_id = '{record['cell_id']}' and "
                           f"tags.`{PARENT_TAG}` = '{self.parent_id}' and "
                           f"tags.record_finished = '{record.get('finished') or ''}'"),
            max_results=1,
        )
        return runs[0].info.run_id if runs else None

    def log_cell(self, record: dict[str, Any]) -> str:
        """Log one record as a child run (or find the one logged before); return its id."""
        from mlflow.entities import Metric, RunTag

        found = self.existing_run(record)
        if found is not None:
            return found
        tags = {
            PARENT_TAG: self.parent_id,
            "mlflow.runName": f"{record['label']}-size{record['size']}-seed{record['seed']}",
            "spec": self.spec_name,
            "cell_id": record["cell_id"],
            "label": record["label"],
            "status": record["status"],
            "git_commit": record.get("git_commit") or "",
            "reason": mask(record.get("reason") or ""),
            "record_finished": record.get("finished") or "",
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
        curves = curve_metrics(record.get("curves") or {}, end or 0)
        for i in range(0, len(curves), METRIC_BATCH):
            self.client.log_batch(run_id, metrics=curves[i : i + METRIC_BATCH])
        self._cell_artifacts(run_id, record)
        if record.get("traceback"):
            trace = mask(record["traceback"])[-MAX_TAG:]
            self.client.log_batch(run_id, tags=[RunTag("traceback", trace)])
        status = "FAILED" if record["status"] == "failed" else "FINISHED"
        self.client.set_terminated(run_id, status=status, end_time=end)
        return run_id

    def _cell_artifacts(self, run_id: str, record: dict[str, Any]) -> None:
        """The record as ``record.json``."""
        self.client.log_dict(run_id, record, "record.json")

    def close(self, failed: bool) -> None:
        self.client.set_terminated(self.parent_id, status="FAILED" if failed else "FINISHED")

    @staticmethod
    def _params(values: Mapping[str, Any]) -> list[Any]:
        from mlflow.entities import Param

        out = []
        for key, value in values.items():
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            out.append(Param(key[:MAX_KEY], mask(text)[:MAX_PARAM]))
        return out


def curve_metrics(curves: Mapping[str, Any], timestamp: int) -> list[Any]:
    """A record's learning curves as MLflow metrics with steps (one series per name)."""
    from mlflow.entities import Metric

    return [Metric(name[:MAX_KEY], float(value), timestamp, int(step))
            for name, curve in curves.items()
            for step, value in zip(curve["steps"], curve["values"], strict=True)
            if value is not None]  # not finite: the cell diverged there


def log_run_report(spec: Any, results_dir: Path, files: list[Path],
                   override: str | None = None) -> str | None:
    """Attach the run's report files to the spec's parent run (``report/``); returns a
    one-line problem instead of raising (the results and the report are safe)."""
    if not spec.tracking.enabled:
        return None
    state = ResultsStore(results_dir).read_tracking()
    given = tracking_uri(spec, override)
    uri, _, password = _credentials(given)  # MLflow has them from open_tracker
    if not state.get("parent_run_id") or state.get("uri") != uri:
        return None  # this run was not tracked (server down, tracking failed)
    try:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        for path in files:
            where = "report" if path.parent == results_dir else \
                f"report/{path.parent.relative_to(results_dir).as_posix()}"
            client.log_artifact(state["parent_run_id"], str(path), where)
    except Exception as exc:  # noqa: BLE001 - tracking must never cost results
        return f"{type(exc).__name__}: {mask(one_line_text(exc), [password])}"
    return None


def _wait_for(claims: Any, key: str, timeout: float = 60.0) -> Any:
    """A claim on ``key`` (waiting while another run holds it), or None without claims."""
    if claims is None:
        return None
    deadline = time.monotonic() + timeout
    claim = claims.acquire(key)
    while claim is None and time.monotonic() < deadline:
        time.sleep(0.2)
        claim = claims.acquire(key)
    return claim


def probe(uri: str, timeout: float = PROBE_TIMEOUT_S, user: str | None = None,
          password: str | None = None) -> str | None:
    """None when an http(s) tracking server answers /health, else why not (one line).
    ``user``/``password``: HTTP basic auth (a URL's credentials, taken out of it). Other
    URIs (sqlite, file stores) are not probed."""
    if not uri.startswith(("http://", "https://")):
        return None
    import base64
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"{uri.rstrip('/')}/health")
    if user is not None:
        token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            if reply.status >= 400:
                return f"HTTP {reply.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return one_line_text(reason)
    return None


def _credentials(uri: str) -> tuple[str, str | None, str | None]:
    """(the URI without ``user:password@``, user, password) of an http(s) URI; MLflow
    gets them as $MLFLOW_TRACKING_USERNAME/PASSWORD, so no URL it prints holds them."""
    if not uri.startswith(("http://", "https://")):
        return uri, None, None
    return strip_credentials(uri)


def one_line_text(value: Any) -> str:
    return " ".join(str(value).split())[:200]


def create_sqlite_store(path: Path) -> None:
    """Make MLflow's SQLite database at ``path`` if it does not exist, atomically.

    MLflow makes its schema by a chain of migrations (about 2 s, a few percent of the
    Figure 1 spec); a run killed during them would leave a half-made database that no
    later run can open (tracking lost for good). So the schema is made once per MLflow
    version in the harness cache (``<cache>/mlflow/empty-<version>.db``, itself made the
    same way) and copied; the copy is made in a file of its own (``mlflow.db-creating-*``,
    a name harness owns) and linked into place only when complete; ``os.link`` never
    replaces a database that another run made meanwhile. Without a writable cache the
    schema is migrated in place as before."""
    from harness.atomic import refuse_link

    refuse_link(path)  # MLflow would write through it
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    template = _empty_store_template()
    if template is None:
        _make_store(path, _migrate)
    else:
        _make_store(path, lambda partial: _copy_template(template, partial))


def _make_store(path: Path, make: Callable[[Path], None]) -> None:
    """``make(partial)`` writes a whole database into a private file, linked to ``path``."""
    partial = path.with_name(f"{path.name}-creating-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        make(partial)
        with contextlib.suppress(FileExistsError):
            os.link(partial, path)
    finally:
        for leftover in path.parent.glob(f"{partial.name}*"):
            leftover.unlink(missing_ok=True)


def _migrate(path: Path) -> None:
    """MLflow's own schema creation, in ``path``."""
    from mlflow import MlflowClient

    quiet_mlflow_loggers()
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments(max_results=1)


def _empty_store_template() -> Path | None:
    """The cached empty database of this MLflow version, made on first use; None when the
    cache cannot be written."""
    import mlflow

    from harness.data.fingerprint import cache_dir

    template = cache_dir() / "mlflow" / f"empty-{mlflow.__version__}.db"
    if template.exists():
        return template
    try:
        template.parent.mkdir(parents=True, exist_ok=True)
        _make_store(template, _migrate)
    except OSError:
        return None
    return template if template.exists() else None


def _copy_template(template: Path, partial: Path) -> None:
    """The template's bytes into ``partial``; its Default experiment (id 0, which harness
    never logs to) gets the artifact folder and times a fresh store would give it."""
    import shutil
    import sqlite3

    shutil.copyfile(template, partial)
    now = int(time.time() * 1000)
    connection = sqlite3.connect(partial)
    try:
        with connection:
            connection.execute(
                "UPDATE experiments SET artifact_location = ?, creation_time = ?, "
                "last_update_time = ? WHERE experiment_id = 0",
                (str(Path.cwd() / "mlruns" / "0"), now, now))
    finally:
        connection.close()


def open_tracker(spec: Any, store: ResultsStore, override: str | None = None,
                 claims: Any = None) -> Tracker | None:
    """A Tracker, or None when tracking is disabled or MLflow cannot be reached (the sweep
    still runs; records without a run id are logged on a later resume)."""
    if not spec.tracking.enabled:
        return None
    given = tracking_uri(spec, override)
    uri, user, password = _credentials(given)
    shown = mask(given)
    problem = probe(uri, user=user, password=password)
    if problem is not None:
        print(f"warning: MLflow tracking server {shown} did not answer /health "
              f"({mask(problem, [password])}); running untracked (records are logged on "
              "a later resume)", file=sys.stderr)
        return None
    if user is not None:
        os.environ["MLFLOW_TRACKING_USERNAME"] = user
        os.environ["MLFLOW_TRACKING_PASSWORD"] = password or ""
    try:
        if uri.startswith("sqlite:///"):
            create_sqlite_store(Path(uri.removeprefix("sqlite:///")))
        return Tracker(spec, store, uri, claims)
    except Exception as exc:  # noqa: BLE001 - tracking must never cost results
        print(f"warning: MLflow tracking at {shown} unavailable ({type(exc).__name__}: "
              f"{mask(one_line_text(exc), [password, url_secret(given)])}); running "
              "untracked (records are logged on a later resume)", file=sys.stderr)
        return None
