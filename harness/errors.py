"""Exceptions the runner understands: they mark a cell as failed or skipped with a reason."""


class Diverged(RuntimeError):
    """Training produced NaN or inf; the cell is recorded as failed with this reason."""


class SkipCell(RuntimeError):
    """The method does not apply to the task; the cell is recorded as skipped."""
