"""The contract tests read the shared data (PTB, GLUE) when it is beside the checkout.

Set per test (not at import): a module-level ``os.environ`` write would leak into every
other test of the session."""

import os
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture(autouse=True)
def shared_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    if not os.environ.get("HARNESS_DATA_DIR") and DATA.is_dir():
        monkeypatch.setenv("HARNESS_DATA_DIR", str(DATA))
