"""Mikolov's Penn Treebank text (ptb.{train,valid,test}.txt) as token-id tensors.

Each line is one sentence of space-separated words; ``<eos>`` is appended at every line end
(929,589 / 73,760 / 82,430 tokens). The 10,000-word vocabulary (``<unk>`` and ``<eos>``
included) comes from the training file, ordered by training frequency then alphabetically
so ids are the same on every machine.

Files are read through ``harness.data.text.read_text`` (one line naming the file for an
empty, binary or non-UTF-8 file; a BOM is dropped), and ``check_ptb`` validates the three
files against what a cell needs (token counts, out-of-vocabulary words) before any
training. torch is imported only by the functions that make tensors, so path resolution
and checks stay light.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harness.data.location import DATA_DIR_ENV, data_root
from harness.data.text import read_text
from harness.errors import DataError, DataMissingError

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["DataMissingError", "PTBCorpus", "check_ptb", "load_ptb", "ptb_files",
           "resolve_data_dir"]

EOS = "<eos>"
UNK = "<unk>"
ENV_VAR = DATA_DIR_ENV
SPLITS = ("train", "valid", "test")
HOW_TO_GET = (
    "get Mikolov's simple-examples PTB (the 'ptb_text_only' dataset on the Hugging Face hub, "
    "or data/ptb.*.txt in 'simple-examples.tgz') and pass --data-dir, the spec's data_dir "
    f"or {ENV_VAR}"
)


@dataclass(frozen=True)
class PTBCorpus:
    """Vocabulary plus the three splits as 1-D ``torch.long`` streams of token ids."""

    vocab: list[str]
    word_to_id: dict[str, int]
    train: Tensor
    valid: Tensor
    test: Tensor

    @property
    def eos_id(self) -> int:
        return self.word_to_id[EOS]

    @property
    def unk_id(self) -> int:
        return self.word_to_id[UNK]


def resolve_data_dir(cli: str | os.PathLike[str] | None = None,
                     spec: str | os.PathLike[str] | None = None) -> Path:
    """The data root (``harness.data.location.data_root``); DataMissingError if none."""
    root = data_root(cli, spec)
    if root is None:
        raise DataMissingError(f"no data directory given: {HOW_TO_GET}")
    return root


def _split_file(data_dir: Path, split: str) -> Path:
    name = f"ptb.{split}.txt"
    candidates = (data_dir / "ptb" / name, data_dir / name)
    for path in candidates:
        if path.is_file():
            return path
    looked = " and ".join(str(p) for p in candidates)
    raise DataMissingError(f"PTB file {name} not found (looked in {looked}); {HOW_TO_GET}")


def ptb_files(data_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """{split: path} of the three PTB files under ``data_dir`` (or ``data_dir/ptb``)."""
    root = Path(data_dir).expanduser()
    return {split: _split_file(root, split) for split in SPLITS}


def read_words(path: Path) -> list[str]:
    """Words of a PTB file with ``<eos>`` at each line end (as Mikolov's reader does)."""
    text = read_text(path, "PTB file")
    if not text.endswith("\n"):
        text += "\n"
    return text.replace("\n", f" {EOS} ").split()


def build_vocab(words: list[str]) -> list[str]:
    """Training types by descending frequency, ties broken alphabetically (deterministic)."""
    counts = Counter(words)
    return sorted(counts, key=lambda w: (-counts[w], w))


def to_ids(words: list[str], word_to_id: dict[str, int]) -> Tensor:
    """Map words to ids; words outside the vocabulary become ``<unk>``."""
    import torch

    unk = word_to_id.get(UNK, -1)
    lookup = map(word_to_id.get, words, repeat(unk, len(words)))
    ids = torch.from_numpy(np.fromiter(lookup, dtype=np.int64, count=len(words)))
    if unk < 0 and bool((ids < 0).any()):
        raise ValueError("words outside the training vocabulary and no <unk> to map them to")
    return ids


def check_ptb(files: dict[str, Path], min_tokens: dict[str, int]) -> dict[str, int]:
    """Validate the three files for a cell: readable UTF-8 text, at least
    ``min_tokens[split]`` tokens each (``<eos>`` included), and no word outside the
    training vocabulary unless it has ``<unk>``. Returns the token counts; raises
    DataError naming the file and the problem."""
    words = {split: read_words(path) for split, path in files.items()}
    vocab = set(words["train"])
    for split, path in files.items():
        need = min_tokens.get(split, 2)
        if len(words[split]) < need:
            raise DataError(f"{path}: {len(words[split])} tokens; the spec needs at least "
                            f"{need} ({split} split: batch and evaluation geometry)")
        if split != "train" and UNK not in vocab:
            unseen = next((w for w in words[split] if w not in vocab), None)
            if unseen is not None:
                raise DataError(f"{path}: word {unseen!r} is not in the training vocabulary "
                                f"of {files['train']}, which has no {UNK} to map it to")
    return {split: len(w) for split, w in words.items()}


def load_ptb(data_dir: str | os.PathLike[str]) -> PTBCorpus:
    """Read the three PTB files under ``data_dir`` (or ``data_dir/ptb``)."""
    words = {split: read_words(path) for split, path in ptb_files(data_dir).items()}
    vocab = build_vocab(words["train"])
    word_to_id = {w: i for i, w in enumerate(vocab)}
    streams = {split: to_ids(ws, word_to_id) for split, ws in words.items()}
    return PTBCorpus(vocab, word_to_id, streams["train"], streams["valid"], streams["test"])


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
