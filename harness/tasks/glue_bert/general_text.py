"""General text for the GLUE task: the corpus the MLM head is adapted on and the bigram's
corpus, as BERT's pre-training text (Wikipedia) was for the paper.

A corpus is named as the language-model task names it (``harness.data.corpora``:
``ptb``, ``wikitext2``, ``wikitext103``, found under the data directory) or ``auto``:
WikiText-2 when its three release files are in the data directory, else PTB. ``auto``
never asks the hub, so what it picks depends only on the files present (and the files it
picks are hashed into the cell id like every data file).

The releases are word-tokenized for word-level language models, so each line is turned
back into text a WordPiece tokenizer reads as it reads GLUE sentences: ``<unk>`` becomes
the tokenizer's own unknown token (a special token: never masked, never a target),
WikiText's ``@-@``, ``@,@``, ``@.@`` rejoin their neighbours (``1 @,@ 000`` is ``1,000``),
and WikiText's section headings (`` = Title = ``) and blank lines are dropped. PTB's ``N``
(every number) stays a word. PTB is lower-cased and so is the uncased WordPiece vocabulary
of BERT and MiniLM, so case loses nothing there.
"""

from __future__ import annotations

import re
from pathlib import Path

from harness.data.corpora import CORPORA, corpus_files, read_corpus_text

_JOINED = re.compile(r" @([-,.])@ ")
_HEADING = re.compile(r"^\s*=.*=\s*$")


def resolve(name: str, root: Path | None) -> str:
    """The corpus ``name`` stands for: ``auto`` is ``wikitext2`` when its train, valid and
    test files are all in the data folder ``root``, else ``ptb``."""
    if name != "auto":
        return name
    spec = CORPORA["wikitext2"]
    if root is not None and all(any(p.is_file() for p in spec.candidates(root, split))
                                for split in spec.filenames):
        return "wikitext2"
    return "ptb"


def general_files(name: str, root: Path | None) -> dict[str, Path | str]:
    """{split: file or hub source} of the general-text corpus ``name`` (``auto`` resolved);
    DataMissingError (one line: what was looked for, where to get it) when absent."""
    return corpus_files(resolve(name, root), root)


def wordpiece_lines(text: str, unk_token: str) -> list[str]:
    """The lines of a word-tokenized release as text for a WordPiece tokenizer (see the
    module docstring); empty lines and WikiText headings dropped."""
    out: list[str] = []
    for line in text.splitlines():
        if not line.strip() or _HEADING.match(line):
            continue
        line = _JOINED.sub(r"\1", f" {line.strip()} ").strip()
        out.append(line.replace("<unk>", unk_token))
    return out


def read_lines(where: Path | str, unk_token: str) -> list[str]:
    """One split of a general-text corpus (a local file or hub source) as WordPiece text."""
    return wordpiece_lines(read_corpus_text(where, "general-text corpus file"), unk_token)
