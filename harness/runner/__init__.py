"""Running specs: grid expansion, execution, results store, resume (light to import: torch,
optuna and mlflow are imported only when a cell, a study or a tracker needs them)."""

from harness.cells.grid import Cell, GridError, expand
from harness.runner.command import run_command
from harness.runner.store import ResultsStore
from harness.runner.sweep import SweepSummary, run_spec

__all__ = ["Cell", "GridError", "ResultsStore", "SweepSummary", "expand", "run_command",
           "run_spec"]
