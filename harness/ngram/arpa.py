"""Bring your own n-gram: an ARPA bigram (unigrams + bigrams, log10, backoff weights) mapped
onto the harness vocabulary, with the same ``rows``/``prob``/``perplexity`` interface as
:class:`harness.ngram.kneser_ney.KneserNeyBigram`.

Vocabulary mapping. A harness word ``w`` is looked up as ``aliases.get(w, w)`` (e.g.
``{"<unk>": "<ptb-unk>"}`` when ``<unk>`` was renamed for lmplz, which reserves it); words absent
from the file map to the file's ``<unk>``. ``<eos>`` plays two ARPA roles: as a *context* it is
``<s>`` (the next line's first word is predicted from it) and as a *predicted* word it is
``</s>``; see the kneser_ney module docstring for why this is the same bigram model.

P(w | v) = 10^logp(v w) when the bigram is listed, else 10^(bow(v) + logp(w)). Rows are the
file's own probabilities restricted to the harness vocabulary, so they sum to 1 minus the mass
the file gives to its ``<unk>`` and to words the harness lacks (not renormalised).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from harness.data.text import read_text
from harness.ngram.kneser_ney import csr_entries, stream_perplexity

EOS = "<eos>"


class ArpaFormatError(ValueError):
    """The file is not an ARPA bigram this reader understands; the message says where."""


def _sections(text: str, path: Path) -> dict[int, list[str]]:
    """Lines of each ``\\N-grams:`` section, keyed by N."""
    out: dict[int, list[str]] = {}
    current: list[str] | None = None
    for line in text.split("\n"):  # one pass over the file's lines, not its tokens
        if line.startswith("\\") and line.endswith("-grams:"):
            current = out.setdefault(int(line[1:-len("-grams:")]), [])
        elif line.startswith("\\end\\"):
            current = None
        elif current is not None and line.strip():
            current.append(line)
    if 1 not in out or 2 not in out:
        raise ArpaFormatError(f"{path}: no \\1-grams: and \\2-grams: sections")
    if max(out) > 2:
        raise ArpaFormatError(f"{path}: order {max(out)} ARPA; only bigrams (order 2) are read")
    return out


def _fields(lines: list[str], words: int, path: Path) -> np.ndarray:
    """(n, words + 2) string array: logp, the words, backoff ('0' where absent)."""
    flat = "\n".join(lines).split()
    for width in (words + 1, words + 2):
        if len(flat) == width * len(lines):
            table = np.array(flat, dtype=object).reshape(len(lines), width)
            if width == words + 1:
                table = np.concatenate([table, np.full((len(lines), 1), "0", dtype=object)], 1)
            return table
    # Mixed lines (some with a backoff, some without): split line by line.
    rows = [line.split() for line in lines]
    if any(len(r) not in (words + 1, words + 2) for r in rows):
        raise ArpaFormatError(f"{path}: malformed {words}-gram line")
    return np.array([r + ["0"] * (words + 2 - len(r)) for r in rows], dtype=object)


class ArpaBigram:
    """An ARPA bigram on the harness vocabulary: log10 tables stored sparse, rows on demand."""

    def __init__(self, unigram_logp: Tensor, context_bow: Tensor, keys: Tensor,
                 bigram_logp: Tensor, vocab_size: int) -> None:
        self.vocab_size = vocab_size
        self._uni = torch.pow(10.0, unigram_logp.double())  # P_uni(w) for predicted w
        self._bow = torch.pow(10.0, context_bow.double())  # backoff weight of context v
        self._keys = keys  # sorted prev * V + next
        self._p = torch.pow(10.0, bigram_logp.double())

    @classmethod
    def read(cls, path: str | os.PathLike[str], vocab: Sequence[str],
             aliases: Mapping[str, str] | None = None, eos: str = EOS) -> ArpaBigram:
        """Read ``path`` and map it onto ``vocab`` (see the module docstring)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ARPA file {path} not found")
        sec = _sections(read_text(path, "ARPA file"), path)
        uni, bi = _fields(sec[1], 1, path), _fields(sec[2], 2, path)
        index = {w: i for i, w in enumerate(uni[:, 1])}
        if "<unk>" not in index:
            raise ArpaFormatError(f"{path}: no <unk> unigram to map unknown words to")
        names = [(aliases or {}).get(w, w) for w in vocab]
        as_pred = [index.get("</s>" if w == eos else n, index["<unk>"])
                   for w, n in zip(vocab, names, strict=True)]
        as_ctx = [index.get("<s>" if w == eos else n, index["<unk>"])
                  for w, n in zip(vocab, names, strict=True)]
        uni_logp = uni[:, 0].astype(np.float64)
        uni_bow = uni[:, 2].astype(np.float64)
        unigram_logp = torch.from_numpy(uni_logp[as_pred])
        context_bow = torch.from_numpy(uni_bow[as_ctx])
        # Bigrams: ARPA word -> harness ids (a word may serve several harness ids, e.g. <unk>).
        v = len(vocab)
        keys, logp = _bigram_keys(bi, index, as_ctx, as_pred, v)
        return cls(unigram_logp, context_bow, keys, logp, v)

    def rows(self, prev_ids: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        """Dense P(. | v) rows, shape (len(prev_ids), V)."""
        prev = prev_ids.reshape(-1).long().cpu()
        out = self._bow.to(dtype)[prev, None] * self._uni.to(dtype)[None, :]
        lo = torch.searchsorted(self._keys, prev * self.vocab_size)
        hi = torch.searchsorted(self._keys, (prev + 1) * self.vocab_size)
        row, entry = csr_entries(lo, hi)
        out[row, self._keys[entry] % self.vocab_size] = self._p[entry].to(dtype)
        return out

    def prob(self, prev_ids: Tensor, next_ids: Tensor) -> Tensor:
        """P(next | prev) pointwise (float64)."""
        prev = prev_ids.reshape(-1).long().cpu()
        nxt = next_ids.reshape(-1).long().cpu()
        query = prev * self.vocab_size + nxt
        pos = torch.searchsorted(self._keys, query).clamp(max=max(len(self._keys) - 1, 0))
        hit = self._keys[pos] == query if len(self._keys) else torch.zeros_like(query, dtype=bool)
        backoff = self._bow[prev] * self._uni[nxt]
        return torch.where(hit, self._p[pos] if len(self._keys) else backoff, backoff)

    def perplexity(self, stream: Tensor, start_id: int | None = None) -> float:
        """Perplexity over every predicted token (see ``stream_perplexity``)."""
        return stream_perplexity(self, stream, start_id)


def _bigram_keys(bi: np.ndarray, index: Mapping[str, int], as_ctx: Sequence[int],
                 as_pred: Sequence[int], v: int) -> tuple[Tensor, Tensor]:
    """Sorted harness keys prev * V + next and log10 probs of the file's bigrams.

    Harness ids sharing an ARPA word (several unknown words -> <unk>) each get its bigrams.
    """
    n_arpa = len(index)
    a_prev = np.array([index.get(w, -1) for w in bi[:, 1]], dtype=np.int64)
    a_next = np.array([index.get(w, -1) for w in bi[:, 2]], dtype=np.int64)
    if (a_prev < 0).any() or (a_next < 0).any():
        raise ArpaFormatError("a bigram uses a word missing from the unigram section")
    logp = bi[:, 0].astype(np.float64)
    arpa_key = a_prev * n_arpa + a_next
    # Expand ARPA (prev, next) to every harness (v, w) with ctx(v) = prev, pred(w) = next.
    ctx, pred = np.asarray(as_ctx), np.asarray(as_pred)
    ctx_ids, pred_ids = np.argsort(ctx, kind="stable"), np.argsort(pred, kind="stable")
    ctx_start = np.searchsorted(ctx[ctx_ids], np.arange(n_arpa + 1))
    pred_start = np.searchsorted(pred[pred_ids], np.arange(n_arpa + 1))
    n_ctx = ctx_start[a_prev + 1] - ctx_start[a_prev]
    n_pred = pred_start[a_next + 1] - pred_start[a_next]
    reps = n_ctx * n_pred
    src = np.repeat(np.arange(len(arpa_key)), reps)
    k = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps)
    hv = ctx_ids[ctx_start[a_prev[src]] + k // n_pred[src]]
    hw = pred_ids[pred_start[a_next[src]] + k % n_pred[src]]
    keys = torch.from_numpy(hv * v + hw)
    order = torch.argsort(keys)
    return keys[order], torch.from_numpy(logp[src])[order]


def read_arpa(path: str | os.PathLike[str], vocab: Sequence[str],
              aliases: Mapping[str, str] | None = None) -> ArpaBigram:
    """Shorthand for :meth:`ArpaBigram.read`."""
    return ArpaBigram.read(path, vocab, aliases)


def log10_to_ln(x: float) -> float:
    """Convert a log10 value (as ARPA stores) to a natural log."""
    return x * math.log(10.0)
