"""MLflow tracking: a parent run per spec, a child run per cell, and logging on resume."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import small_spec
from mlflow import MlflowClient

from harness.runner import run_spec
from harness.spec import validate_spec
from harness.tracking import flatten, tracking_uri


def test_flatten_gives_dotted_string_params() -> None:
    assert dict(flatten({"task": {"params": {"epochs": 20, "cube": [0.0, 1.0]}}, "x": "a"})) == {
        "task.params.epochs": "20", "task.params.cube": "[0.0, 1.0]", "x": "a"}


def test_cells_are_logged_as_child_runs_and_untracked_records_on_resume(tmp_path, monkeypatch
                                                                         ) -> None:
    monkeypatch.chdir(tmp_path)
    data = small_spec(seeds=[0])
    data["methods"][1]["lambda"] = {"schedule": "table", "values": {2: 1.0}}  # size 5 fails
    untracked = run_spec(validate_spec(data), only={"size": 2})
    assert all(r["mlflow_run_id"] is None for r in untracked.records.values())

    spec = validate_spec({**data, "tracking": {"enabled": True}})
    summary = run_spec(spec)
    assert summary.resumed == 3 and len(summary.records) == 6
    uri = tracking_uri(spec)
    assert uri == f"sqlite:///{(tmp_path / 'results' / 'mlflow.db').resolve()}"
    assert (tmp_path / "results" / "mlflow.db").is_file()

    stored = {p.stem: json.loads(p.read_text()) for p in Path("results/tiny/cells").glob("*.json")}
    for cell_id, record in stored.items():
        assert record["mlflow_run_id"], cell_id
        if record["size"] == 2:  # logged on resume, not recomputed
            assert record["finished"] == untracked.records[cell_id]["finished"]

    client = MlflowClient(tracking_uri=uri)
    parent_id = json.loads(Path("results/tiny/tracking.json").read_text())["parent_run_id"]
    parent = client.get_run(parent_id)
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")
    assert client.get_experiment(parent.info.experiment_id).name == "tiny"
    assert {run.info.run_id for run in children} == {r["mlflow_run_id"] for r in stored.values()}
    for run in children:
        record = stored[run.data.tags["cell_id"]]
        assert run.data.tags["status"] == record["status"]
        assert run.data.params["task.params.epochs"] == "40"
        assert run.data.params["size"] == str(record["size"])
        assert run.data.params["method.name"] == record["method"]
        if record["status"] == "ok":
            assert run.info.status == "FINISHED"
            assert run.data.metrics["accuracy_mean"] == record["summary"]["accuracy"]["mean"]
            assert {"accuracy_median", "accuracy_p10", "accuracy_p90"} <= set(run.data.metrics)
        else:
            assert run.info.status == "FAILED" and "no entry for size 5" in run.data.tags["reason"]
    assert client.get_run(parent_id).info.status == "FAILED"  # one cell failed

    rerun = run_spec(spec, only={"method": "baseline"})  # the same parent run is reused
    assert rerun.resumed == 2
    assert json.loads(Path("results/tiny/tracking.json").read_text())["parent_run_id"] == parent_id


def test_a_run_killed_while_mlflow_makes_its_database_leaves_none_half_made(tmp_path) -> None:
    """MLflow makes its SQLite schema by a chain of migrations; SIGKILL at any point of
    them must leave no database or a whole one (a half-made one refuses every later run:
    the fault benchmark's tracking was lost that way)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from harness.tracking import create_sqlite_store

    code = ("import sys; from pathlib import Path; from harness.tracking import "
            "create_sqlite_store; create_sqlite_store(Path(sys.argv[1]))")
    for i, delay in enumerate((0.0, 0.15, 0.4, 0.8)):
        folder = tmp_path / f"try{i}"
        folder.mkdir()
        db = folder / "mlflow.db"
        cache = tmp_path / f"cache{i}"  # empty: the migrations run (into the template)
        (cache / "mlflow").mkdir(parents=True)
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true",
               "HARNESS_CACHE_DIR": str(cache)}
        proc = subprocess.Popen([sys.executable, "-c", code, str(db)], env=env)
        deadline = time.monotonic() + 120
        while (not any(folder.iterdir()) and not any((cache / "mlflow").iterdir())
               and proc.poll() is None):  # the schema is begun
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(delay)  # somewhere in the migrations (or just after them)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if db.exists():  # complete: it opens and takes a run
            client = MlflowClient(tracking_uri=f"sqlite:///{db}")
            client.create_run(client.create_experiment(f"whole{i}"))
        for template in (cache / "mlflow").glob("empty-*.db"):  # whole, if there
            MlflowClient(tracking_uri=f"sqlite:///{template}").search_experiments()
        create_sqlite_store(db)  # the next run makes it (or keeps the whole one)
        client = MlflowClient(tracking_uri=f"sqlite:///{db}")
        run = client.create_run(client.create_experiment(f"after{i}"))
        assert client.get_run(run.info.run_id).info.status == "RUNNING"


def test_a_store_copied_from_the_cached_template_is_the_migrated_schema(tmp_path,
                                                                        monkeypatch) -> None:
    """The store is copied from an empty database made once per MLflow version in the
    cache: the same tables, indexes and schema version as MLflow's own migrations give,
    and it takes runs; the Default experiment points where a fresh store's would."""
    import sqlite3

    import mlflow

    from harness.tracking import _migrate, create_sqlite_store

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    template = tmp_path / "cache" / "mlflow" / f"empty-{mlflow.__version__}.db"
    create_sqlite_store(tmp_path / "a" / "mlflow.db")
    assert template.exists()  # made on first use
    template_bytes = template.read_bytes()
    create_sqlite_store(tmp_path / "b" / "mlflow.db")  # copied
    assert template.read_bytes() == template_bytes  # never written through
    (tmp_path / "c").mkdir()
    _migrate(tmp_path / "c" / "mlflow.db")  # MLflow's own, in place

    def schema(db: Path) -> tuple[list, list, list]:
        """Tables with their columns as sets (MLflow's own migrations order the columns
        of a rebuilt table differently from one creation to the next), indexes, version,
        experiments."""
        with sqlite3.connect(db) as con:
            objects = sorted(con.execute("SELECT type, name FROM sqlite_master"))
            columns = [(name, sorted(con.execute(f'PRAGMA table_info("{name}")'),
                                     key=lambda c: c[1]))
                       for kind, name in objects if kind == "table"]
            return ([*objects, *((n, [c[1:] for c in cols]) for n, cols in columns)],
                    list(con.execute("SELECT version_num FROM alembic_version")),
                    list(con.execute("SELECT experiment_id, name, artifact_location, "
                                     "lifecycle_stage FROM experiments")))
    assert schema(tmp_path / "b" / "mlflow.db") == schema(tmp_path / "c" / "mlflow.db")
    assert schema(tmp_path / "b" / "mlflow.db")[2][0][2] == str(tmp_path / "mlruns" / "0")
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'b' / 'mlflow.db'}")
    run = client.create_run(client.create_experiment("copied"))
    assert client.get_run(run.info.run_id).info.status == "RUNNING"
    assert not list((tmp_path / "b").glob("*-creating-*"))
