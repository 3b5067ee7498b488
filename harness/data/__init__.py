"""Dataset loaders shared by tasks (the data folder: harness.data.location.data_root)."""

from harness.data.location import DATA_DIR_ENV, data_root
from harness.data.ptb import PTBCorpus, first_tokens, load_ptb, resolve_data_dir
from harness.errors import DataError, DataMissingError

__all__ = ["DATA_DIR_ENV", "DataError", "DataMissingError", "PTBCorpus", "data_root",
           "first_tokens", "load_ptb", "resolve_data_dir"]
