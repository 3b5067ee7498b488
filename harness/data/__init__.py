"""Dataset loaders shared by tasks (paths come from --data-dir / spec / HARNESS_DATA_DIR)."""

from harness.data.ptb import (
    DataMissingError,
    PTBCorpus,
    first_tokens,
    load_ptb,
    resolve_data_dir,
)

__all__ = ["DataMissingError", "PTBCorpus", "first_tokens", "load_ptb", "resolve_data_dir"]
