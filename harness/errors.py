"""Exceptions with a meaning for the user or the runner.

``HarnessError`` and its subclasses carry one line meant for the user: the CLI prints it
without a traceback. ``Diverged`` and ``SkipCell`` mark a cell as failed or skipped.
"""


class HarnessError(Exception):
    """A problem the user can fix (bad input, a folder harness will not touch); the
    message is one line."""


class DataError(HarnessError, ValueError):
    """A data file is missing, unreadable or unusable; the message names the file."""


class DataMissingError(DataError, FileNotFoundError):
    """A data file is absent; the message says what, where and how to get it."""


class Diverged(RuntimeError):
    """Training produced NaN or inf; the cell is recorded as failed with this reason."""


class SkipCell(RuntimeError):
    """The method does not apply to the task; the cell is recorded as skipped."""


class ContractError(RuntimeError):
    """A plugin's method or task broke the contract (a term of the wrong shape, metrics
    that are not the declared ones); the cell fails with this one line."""
