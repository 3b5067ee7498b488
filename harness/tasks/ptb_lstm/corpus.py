"""The PTB corpus and its Kneser-Ney bigram (the restricted model), loaded once per process
from the shared loader (harness.data.ptb) and bigram (harness.ngram.kneser_ney)."""

from __future__ import annotations

from harness.data.ptb import PTBCorpus, load_ptb, resolve_data_dir
from harness.ngram.kneser_ney import KneserNeyBigram

_CORPORA: dict[str, PTBCorpus] = {}


def load_corpus(data_dir: str | None) -> PTBCorpus:
    """PTB from --data-dir / the spec's data_dir / HARNESS_DATA_DIR (cached per process)."""
    key = str(data_dir)
    if key not in _CORPORA:
        _CORPORA[key] = load_ptb(resolve_data_dir(data_dir))
    return _CORPORA[key]


def build_bigram(train, vocab_size: int) -> KneserNeyBigram:  # noqa: ANN001 - a 1-D id tensor
    """The modified Kneser-Ney bigram of a training stream."""
    return KneserNeyBigram.from_stream(train, vocab_size)
