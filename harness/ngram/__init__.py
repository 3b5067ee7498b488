"""Bigram restricted models: our Kneser-Ney estimator and ARPA files brought by the user."""

from harness.ngram.arpa import ArpaBigram, ArpaFormatError, read_arpa
from harness.ngram.kneser_ney import BigramModel, KneserNeyBigram, build, stream_perplexity

__all__ = [
    "ArpaBigram",
    "ArpaFormatError",
    "BigramModel",
    "KneserNeyBigram",
    "build",
    "read_arpa",
    "stream_perplexity",
]
