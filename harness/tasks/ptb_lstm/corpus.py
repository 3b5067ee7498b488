"""The language-model corpus and the restricted model, loaded once per process.

The corpus is read from exactly the files the task's params declare
(``PtbLstmParams.data_files``, the ones fingerprinted into the cell id) through
``harness.data.corpora``. The restricted model is the modified Kneser-Ney bigram of the
training prefix (``harness.ngram.kneser_ney``) or, with ``restricted_arpa``, an ARPA bigram
file mapped onto the corpus vocabulary (``harness.ngram.arpa``); Xie et al.'s noising
variants still read their counts (N1+(x.), c(x), the continuation counts) from the
training prefix, as they are statistics of the data, not of the restricted model.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from torch import Tensor

from harness.data.corpora import SPLITS, LMCorpus, load_files
from harness.data.location import data_root
from harness.data.text import read_text
from harness.errors import DataError
from harness.ngram.arpa import ArpaBigram, ArpaFormatError, _sections
from harness.ngram.kneser_ney import KneserNeyBigram, stream_perplexity

_CORPORA: dict[tuple, LMCorpus] = {}
_ARPAS: dict[tuple, ArpaBigram] = {}


def load_corpus(data_dir: str | None, corpus: str | Mapping[str, str] = "ptb") -> LMCorpus:
    """``corpus`` (default PTB) from --data-dir / the spec's data_dir / HARNESS_DATA_DIR,
    cached per process."""
    from harness.data.corpora import corpus_files

    return load_split_files(corpus_files(corpus, data_root(data_dir)))


def load_split_files(files: Mapping[str, Path | str]) -> LMCorpus:
    """The corpus of the three split files (paths or hub sources), cached per process."""
    key = tuple(str(files[split]) for split in SPLITS)
    if key not in _CORPORA:
        _CORPORA[key] = load_files({split: files[split] for split in SPLITS})
    return _CORPORA[key]


def build_bigram(train, vocab_size: int) -> KneserNeyBigram:  # noqa: ANN001 - a 1-D id tensor
    """The modified Kneser-Ney bigram of a training stream."""
    return KneserNeyBigram.from_stream(train, vocab_size)


class ArpaRestricted:
    """An ARPA bigram as the restricted model: rows, probabilities and perplexity from
    the file; ``counts``, the training prefix's KN fit, gives noising its statistics."""

    def __init__(self, arpa: ArpaBigram, counts: KneserNeyBigram) -> None:
        self.arpa, self.counts = arpa, counts
        self.vocab_size = arpa.vocab_size

    def rows(self, prev_ids: Tensor, dtype=None) -> Tensor:  # noqa: ANN001
        return self.arpa.rows(prev_ids) if dtype is None else self.arpa.rows(prev_ids, dtype)

    def prob(self, prev_ids: Tensor, next_ids: Tensor) -> Tensor:
        return self.arpa.prob(prev_ids, next_ids)

    def perplexity(self, stream: Tensor, start_id: int | None = None) -> float:
        return stream_perplexity(self.arpa, stream, start_id)


def check_arpa(path: Path) -> None:
    """A readable ARPA bigram (\\1-grams: and \\2-grams:, order 2, a <unk>), before any
    training; DataError naming the file."""
    text = read_text(path, "ARPA file")
    try:
        sections = _sections(text, path)
    except ArpaFormatError as err:
        raise DataError(str(err)) from None
    if not any(line.split()[1:2] == ["<unk>"] for line in sections[1]):
        raise DataError(f"{path}: no <unk> unigram to map unknown words to")


def arpa_bigram(path: Path, vocab: list[str], aliases: Mapping[str, str]) -> ArpaBigram:
    """The ARPA file on ``vocab``, cached per process (by path and vocabulary)."""
    key = (str(path), hash(tuple(vocab)), tuple(sorted(aliases.items())))
    if key not in _ARPAS:
        try:
            _ARPAS[key] = ArpaBigram.read(path, vocab, aliases)
        except ArpaFormatError as err:
            raise DataError(str(err)) from None
    return _ARPAS[key]


def restricted_model(train: Tensor, corpus: LMCorpus, arpa: Path | None,
                     aliases: Mapping[str, str]) -> KneserNeyBigram | ArpaRestricted:
    """The cell's restricted model: the KN bigram of ``train`` (the training prefix), or
    the ARPA file with that bigram's counts for noising."""
    kn = build_bigram(train.cpu(), len(corpus.vocab))
    if arpa is None:
        return kn
    return ArpaRestricted(arpa_bigram(arpa, corpus.vocab, aliases), kn)
