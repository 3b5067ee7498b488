"""Where the data files are: one rule for every task and command.

``--data-dir`` on the command line, else the spec's ``data_dir``, else the environment
variable ``HARNESS_DATA_DIR``; else none. No default path is built in, so a run never
silently reads data from a sibling checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "HARNESS_DATA_DIR"


def data_root(cli: str | os.PathLike[str] | None = None,
              spec: str | os.PathLike[str] | None = None) -> Path | None:
    """The data folder by the rule above (``~`` expanded), or None when none is given."""
    for value in (cli, spec, os.environ.get(DATA_DIR_ENV)):
        if value not in (None, ""):
            return Path(value).expanduser()
    return None
