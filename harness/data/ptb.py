"""Mikolov's Penn Treebank text (ptb.{train,valid,test}.txt) as token-id tensors.

Each line is one sentence of space-separated words; ``<eos>`` is appended at every line end
(929,589 / 73,760 / 82,430 tokens). The 10,000-word vocabulary (``<unk>`` and ``<eos>``
included) comes from the training file, ordered by training frequency then alphabetically
so ids are the same on every machine.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

EOS = "<eos>"
UNK = "<unk>"
ENV_VAR = "HARNESS_DATA_DIR"
SPLITS = ("train", "valid", "test")
HOW_TO_GET = (
    "get Mikolov's simple-examples PTB (the 'ptb_text_only' dataset on the Hugging Face hub, "
    "or data/ptb.*.txt in 'simple-examples.tgz') and pass --data-dir, the spec's data_dir "
    f"or {ENV_VAR}"
)


class DataMissingError(FileNotFoundError):
    """A data file is absent; the message is one line saying what, where and how to get it."""


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
    """The data root: --data-dir, else the spec's data_dir, else $HARNESS_DATA_DIR.

    No default path is built in, so a run never silently reads data from a sibling checkout.
    """
    for value in (cli, spec, os.environ.get(ENV_VAR)):
        if value not in (None, ""):
            return Path(value).expanduser()
    raise DataMissingError(f"no data directory given: {HOW_TO_GET}")


def _split_file(data_dir: Path, split: str) -> Path:
    name = f"ptb.{split}.txt"
    candidates = (data_dir / "ptb" / name, data_dir / name)
    for path in candidates:
        if path.is_file():
            return path
    looked = " and ".join(str(p) for p in candidates)
    raise DataMissingError(f"PTB file {name} not found (looked in {looked}); {HOW_TO_GET}")


def read_words(path: Path) -> list[str]:
    """Words of a PTB file with ``<eos>`` at each line end (as Mikolov's reader does)."""
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        text += "\n"
    return text.replace("\n", f" {EOS} ").split()


def build_vocab(words: list[str]) -> list[str]:
    """Training types by descending frequency, ties broken alphabetically (deterministic)."""
    counts = Counter(words)
    return sorted(counts, key=lambda w: (-counts[w], w))


def to_ids(words: list[str], word_to_id: dict[str, int]) -> Tensor:
    """Map words to ids; words outside the vocabulary become ``<unk>``."""
    unk = word_to_id.get(UNK, -1)
    lookup = map(word_to_id.get, words, repeat(unk, len(words)))
    ids = torch.from_numpy(np.fromiter(lookup, dtype=np.int64, count=len(words)))
    if unk < 0 and bool((ids < 0).any()):
        raise ValueError("words outside the training vocabulary and no <unk> to map them to")
    return ids


def load_ptb(data_dir: str | os.PathLike[str]) -> PTBCorpus:
    """Read the three PTB files under ``data_dir`` (or ``data_dir/ptb``)."""
    root = Path(data_dir).expanduser()
    paths = {split: _split_file(root, split) for split in SPLITS}
    words = {split: read_words(path) for split, path in paths.items()}
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
