"""Mikolov's Penn Treebank text (ptb.{train,valid,test}.txt) as token-id tensors.

Each line is one sentence of space-separated words; ``<eos>`` is appended at every line end
(929,589 / 73,760 / 82,430 tokens). The 10,000-word vocabulary (``<unk>`` and ``<eos>``
included) comes from the training file, ordered by training frequency then alphabetically
so ids are the same on every machine.

PTB is the default corpus of ``harness.data.corpora`` (which also reads WikiText and
explicit files the same way); this module keeps the PTB-named entry points. Files are read
through ``harness.data.text.read_text`` (one line naming the file for an empty, binary or
non-UTF-8 file; a BOM is dropped), and ``check_ptb`` validates the three files against what
a cell needs (token counts, out-of-vocabulary words) before any training. torch is imported
only by the functions that make tensors, so path resolution and checks stay light.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from harness.data.corpora import (
    CORPORA,
    EOS,
    SPLITS,
    UNK,
    LMCorpus,
    check_files,
    corpus_files,
    load_files,
    word_blocks,
)
from harness.data.location import DATA_DIR_ENV, data_root
from harness.data.text import read_text
from harness.errors import DataMissingError

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["DataMissingError", "PTBCorpus", "check_ptb", "load_ptb", "ptb_files",
           "resolve_data_dir"]

ENV_VAR = DATA_DIR_ENV
HOW_TO_GET = CORPORA["ptb"].how_to_get
PTBCorpus = LMCorpus
"""The loaded corpus (the same class for every corpus; the PTB name is kept)."""
_ = (EOS, UNK, SPLITS)  # re-exported names


def resolve_data_dir(cli: str | os.PathLike[str] | None = None,
                     spec: str | os.PathLike[str] | None = None) -> Path:
    """The data root (``harness.data.location.data_root``); DataMissingError if none."""
    root = data_root(cli, spec)
    if root is None:
        raise DataMissingError(f"no data directory given: {HOW_TO_GET}")
    return root


def ptb_files(data_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """{split: path} of the three PTB files under ``data_dir`` (or ``data_dir/ptb``)."""
    files = corpus_files("ptb", Path(data_dir).expanduser())
    return {split: Path(path) for split, path in files.items()}


def read_words(path: Path) -> list[str]:
    """Words of a PTB file with ``<eos>`` at each line end (as Mikolov's reader does)."""
    return [w for block in word_blocks(read_text(path, "PTB file")) for w in block]


def check_ptb(files: dict[str, Path], min_tokens: dict[str, int]) -> dict[str, int]:
    """``harness.data.corpora.check_files`` of the three PTB files."""
    return check_files(files, min_tokens)


def load_ptb(data_dir: str | os.PathLike[str]) -> PTBCorpus:
    """Read the three PTB files under ``data_dir`` (or ``data_dir/ptb``)."""
    return load_files(ptb_files(data_dir))


def first_tokens(train: Tensor, size: int | float) -> Tensor:
    """The first ``size`` tokens of the training stream, for a dataset-size axis.

    ``size`` is a token count (int >= 2, so at least one bigram) or a fraction in (0, 1].
    """
    n = len(train)
    if isinstance(size, bool) or not isinstance(size, (int, float)):
        raise TypeError(f"size must be an int token count or a float fraction, got {size!r}")
    if isinstance(size, float):
        if not 0.0 < size <= 1.0:
            raise ValueError(f"fraction size must be in (0, 1], got {size}")
        count = max(2, round(size * n))
    else:
        count = size
    if not 2 <= count <= n:
        raise ValueError(f"size {size} gives {count} tokens; need 2..{n}")
    return train[:count]
