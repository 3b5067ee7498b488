"""The contract tests read the shared data (PTB, GLUE) when it is beside the checkout."""

import os
from pathlib import Path

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
if not os.environ.get("HARNESS_DATA_DIR") and DATA.is_dir():
    os.environ["HARNESS_DATA_DIR"] = str(DATA)
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
