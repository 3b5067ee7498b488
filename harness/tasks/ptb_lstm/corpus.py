"""Adapters to the shared PTB loader (harness.data.ptb) and Kneser-Ney bigram
(harness.ngram.kneser_ney). When those modules are absent (or lack something this task
needs), small local fallbacks with the same interface are used.

Interface this task relies on:

- ``load_corpus(data_dir)`` -> object with ``vocab`` (list), ``word_to_id`` and
  ``train``/``valid``/``test`` 1-D long tensors (``<eos>`` at line ends).
- ``build_bigram(train, vocab_size)`` -> object with ``rows(prev) -> (n, V)`` float32 dense
  rows, plus 1-D tensors ``context_counts`` c(v), ``follow_types`` N1+(v.),
  ``continuation`` p_cont(w) and ``unigram`` p(w).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

FILES = {"train": "ptb.train.txt", "valid": "ptb.valid.txt", "test": "ptb.test.txt"}
EOS = "<eos>"


def _find_dir(data_dir: str | None) -> Path:
    base = Path(data_dir or os.environ.get("HARNESS_DATA_DIR") or "")
    for cand in (base / "ptb", base):
        if (cand / FILES["train"]).exists():
            return cand
    raise FileNotFoundError(
        f"PTB not found under {str(base)!r} (expected ptb/ptb.train.txt); pass --data-dir, "
        "spec data_dir or HARNESS_DATA_DIR"
    )


@dataclass
class Corpus:
    vocab: list[str]
    word_to_id: dict[str, int]
    train: Tensor
    valid: Tensor
    test: Tensor


def _local_load(data_dir: str | None) -> Corpus:
    root = _find_dir(data_dir)
    words = {s: [w for line in (root / f).read_text().splitlines() for w in line.split() + [EOS]]
             for s, f in FILES.items()}
    vocab: list[str] = []
    index: dict[str, int] = {}
    for w in words["train"]:
        if w not in index:
            index[w] = len(vocab)
            vocab.append(w)
    unk = index.get("<unk>", 0)
    streams = {s: torch.tensor([index.get(w, unk) for w in ws], dtype=torch.long)
               for s, ws in words.items()}
    return Corpus(vocab, index, streams["train"], streams["valid"], streams["test"])


_CORPUS_CACHE: dict[str, Any] = {}


def load_corpus(data_dir: str | None) -> Any:
    """The PTB corpus via harness.data.ptb when available, else the local reader."""
    key = str(data_dir)
    if key not in _CORPUS_CACHE:
        try:
            from harness.data import ptb as shared
        except ImportError:
            shared = None
        if shared is not None and hasattr(shared, "load_ptb"):
            resolved = (shared.resolve_data_dir(data_dir)
                        if hasattr(shared, "resolve_data_dir") else data_dir)
            _CORPUS_CACHE[key] = shared.load_ptb(resolved)
        else:
            _CORPUS_CACHE[key] = _local_load(data_dir)
    return _CORPUS_CACHE[key]


class LocalKneserNey:
    """Interpolated modified Kneser-Ney bigram (Chen and Goodman) of a token stream, sparse;
    dense rows are formed on demand."""

    def __init__(self, stream: Tensor, vocab_size: int) -> None:
        V = vocab_size
        stream = stream.long().cpu()
        keys, counts = torch.unique(stream[:-1] * V + stream[1:], return_counts=True)
        prev, nxt = keys // V, keys % V
        counts = counts.double()
        n = [(counts == i).sum().item() for i in (1, 2, 3, 4)]
        y = n[0] / max(n[0] + 2 * n[1], 1)
        d = [1 - 2 * y * n[1] / max(n[0], 1), 2 - 3 * y * n[2] / max(n[1], 1),
             3 - 4 * y * n[3] / max(n[2], 1)]
        disc = torch.where(counts == 1, d[0], torch.where(counts == 2, d[1], d[2])).double()
        ctx = torch.zeros(V, dtype=torch.float64).index_add_(0, prev, counts)
        mass = torch.zeros(V, dtype=torch.float64).index_add_(0, prev, disc)
        safe = ctx.clamp_min(1.0)
        self.gamma = torch.where(ctx > 0, mass / safe, torch.ones_like(ctx))
        follow = torch.bincount(prev, minlength=V).double()
        cont = torch.bincount(nxt, minlength=V).double()
        self.context_counts = ctx.float()
        self.follow_types = follow.float()
        # Lowest order: discounted continuation counts interpolated with the uniform
        # distribution (as KenLM does), so no word has probability zero.
        m = [(cont == i).sum().item() for i in (1, 2, 3, 4)]
        yu = m[0] / max(m[0] + 2 * m[1], 1)
        du = [1 - 2 * yu * m[1] / max(m[0], 1), 2 - 3 * yu * m[2] / max(m[1], 1),
              3 - 4 * yu * m[3] / max(m[2], 1)]
        dcont = torch.where(cont == 0, 0.0, torch.where(
            cont == 1, du[0], torch.where(cont == 2, du[1], du[2]))).double()
        total = cont.sum()
        self.continuation = ((cont - dcont) / total + dcont.sum() / total / V).float()
        self.unigram = (torch.bincount(stream, minlength=V).double() / len(stream)).float()
        order = torch.argsort(prev, stable=True)
        self._next = nxt[order]
        self._value = ((counts - disc).clamp_min(0) / safe[prev])[order].float()
        self._offsets = torch.zeros(V + 1, dtype=torch.long)
        self._offsets[1:] = torch.cumsum(follow.long(), 0)
        self.gamma = self.gamma.float()
        self.V = V

    def rows(self, prev: Tensor) -> Tensor:
        prev = prev.long().cpu().reshape(-1)
        out = self.gamma[prev, None] * self.continuation[None, :]
        start, stop = self._offsets[prev], self._offsets[prev + 1]
        lengths = stop - start
        row = torch.repeat_interleave(torch.arange(len(prev)), lengths)
        first = torch.repeat_interleave(start - torch.cumsum(lengths, 0) + lengths, lengths)
        entry = first + torch.arange(int(lengths.sum()))
        out[row, self._next[entry]] += self._value[entry]
        return out


class _SharedBigram:
    """Wraps harness.ngram.kneser_ney's model into the interface above."""

    def __init__(self, model: Any, train: Tensor, vocab_size: int) -> None:
        self.model = model
        self._train, self._V = train, vocab_size
        self.fallback: LocalKneserNey | None = None
        for name, alts in {
            "context_counts": ("context_counts", "c", "counts", "context_count"),
            "follow_types": ("follow_types", "n1plus_follow", "n1p_follow", "N1plus_follow"),
            "continuation": ("continuation", "p_cont", "continuation_probs"),
            "unigram": ("unigram", "p_unigram", "unigram_probs"),
        }.items():
            value = next((getattr(model, a) for a in alts if hasattr(model, a)), None)
            if callable(value):
                value = value()
            if value is None:
                value = getattr(self._fb(), name)
            setattr(self, name, torch.as_tensor(value).float().cpu())

    def _fb(self) -> LocalKneserNey:
        if self.fallback is None:  # the shared model lacks a count: compute it locally
            self.fallback = LocalKneserNey(self._train, self._V)
        return self.fallback

    def rows(self, prev: Tensor) -> Tensor:
        return torch.as_tensor(self.model.rows(prev.long().cpu())).float()


def build_bigram(train: Tensor, vocab_size: int) -> Any:
    """The KN bigram of a training stream: the shared one when importable, else local."""
    try:
        from harness.ngram import kneser_ney as shared
    except ImportError:
        return LocalKneserNey(train, vocab_size)
    cls = next((getattr(shared, n) for n in ("KneserNeyBigram", "KNBigram", "Bigram")
                if hasattr(shared, n)), None)
    builder = next((getattr(shared, n) for n in ("build", "build_bigram", "from_stream")
                    if hasattr(shared, n)), None)
    if builder is None and cls is not None and hasattr(cls, "from_stream"):
        builder = cls.from_stream
    if builder is None:
        return LocalKneserNey(train, vocab_size)
    try:
        model = builder(train, vocab_size)
    except TypeError:
        model = builder(train)
    return _SharedBigram(model, train, vocab_size)
