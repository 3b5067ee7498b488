"""The restricted model of the GLUE task: a Kneser-Ney bigram over WordPiece tokens.

P_restricted(y | w) is the interpolated modified Kneser-Ney bigram
(``harness.ngram.kneser_ney``; sparse, dense rows formed per batch) of a token stream in
the model's own WordPiece vocabulary, so that its rows line up with the MLM head's
logits. The stream is the corpus named by ``bigram_corpus``, each example or line
tokenized exactly as the model reads it ([CLS] a [SEP] (b [SEP]), no truncation) and
concatenated, so the short context of a segment's first word is [CLS] (or the [SEP]
before a second segment), as in training:

- ``"train"``: the full training files of the spec's GLUE tasks (one bigram for all of
  them);
- a general-text corpus by name (``auto``, ``ptb``, ``wikitext2``, ``wikitext103``; see
  ``general_text``): its training file, each line made WordPiece text as for the MLM
  head's adaptation (``<unk>`` becomes the tokenizer's unknown token). This is the
  paper's choice in kind: it used BERT's pre-training corpus, Wikipedia;
- a path to a local text file: one sentence or document a line.

Built once per process and corpus, and cached (every cell and replicate shares it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from harness.data.glue import load_glue
from harness.ngram.kneser_ney import KneserNeyBigram
from harness.tasks.glue_bert.config import GENERAL_CORPORA
from harness.tasks.glue_bert.general_text import general_files, read_lines

_BIGRAMS: dict[tuple, KneserNeyBigram] = {}
_CHUNK = 4096


def _ids(tokenizer: Any, text_a: list[str], text_b: list[str] | None) -> list[int]:
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # long documents: no "longer than 512" warnings
    try:
        out: list[int] = []
        for i in range(0, len(text_a), _CHUNK):
            enc = tokenizer(text_a[i:i + _CHUNK],
                            None if text_b is None else text_b[i:i + _CHUNK],
                            truncation=False, add_special_tokens=True)
            for row in enc["input_ids"]:
                out.extend(row)
        return out
    finally:
        hf_logging.set_verbosity(previous)


def corpus_stream(tokenizer: Any, source: str, tasks: list[str], data_dir: str | None
                  ) -> torch.Tensor:
    """The WordPiece token stream of ``source`` ("train", a general corpus, a text file)."""
    if source == "train":
        ids: list[int] = []
        for task in tasks:
            split = load_glue(task, "train", data_dir)
            ids.extend(_ids(tokenizer, split.text_a, split.text_b))
        return torch.tensor(ids, dtype=torch.long)
    if source in GENERAL_CORPORA:
        root = None if data_dir is None else Path(data_dir).expanduser()
        lines = read_lines(general_files(source, root)["train"], tokenizer.unk_token)
        return torch.tensor(_ids(tokenizer, lines, None), dtype=torch.long)
    path = Path(source).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"bigram_corpus {source!r}: no such file (use 'train' for the GLUE training "
            f"text, a corpus name ({', '.join(GENERAL_CORPORA)}), or a path to a local "
            f"text file, one sentence or document a line)")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return torch.tensor(_ids(tokenizer, [line for line in lines if line], None),
                        dtype=torch.long)


def wordpiece_bigram(tokenizer: Any, vocab_size: int, source: str, tasks: list[str],
                     data_dir: str | None) -> KneserNeyBigram:
    """The cached KN bigram of ``source`` over a vocabulary of ``vocab_size`` tokens."""
    key = (getattr(tokenizer, "name_or_path", ""), vocab_size, source,
           tuple(tasks) if source == "train" else (), str(data_dir))
    if key not in _BIGRAMS:
        stream = corpus_stream(tokenizer, source, tasks, data_dir)
        _BIGRAMS[key] = KneserNeyBigram.from_stream(stream, vocab_size)
    return _BIGRAMS[key]
