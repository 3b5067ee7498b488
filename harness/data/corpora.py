"""Language-model corpora by name: Penn Treebank, WikiText-2, WikiText-103, or your files.

A spec names its corpus (``corpus`` of the ``ptb_lstm`` task):

- ``ptb``: Mikolov's ``ptb.{train,valid,test}.txt`` under ``<data dir>/ptb/`` or directly
  in the data directory (the default);
- ``wikitext2`` / ``wikitext103``: the tokenized v1 releases, ``wiki.{train,valid,test}.tokens``
  under ``<data dir>/wikitext-2/`` (``wikitext-103/``, the folders the official zips unpack
  to) or directly in the data directory; when none of the three files is there, the
  Hugging Face dataset ``Salesforce/wikitext`` (configuration ``wikitext-2-v1`` /
  ``wikitext-103-v1``, one row per line of the release files) when ``datasets`` is
  installed and the hub answers (a hub corpus is recorded by name, not hashed);
- explicit files ``{train: ..., valid: ..., test: ...}``, relative to the data directory
  (absolute paths are used as they are).

Every corpus is read as Mikolov's reader reads PTB (and as the WikiText releases count
their tokens): the whitespace-separated words of each line, then ``<eos>`` at the line end,
so a blank line is a lone ``<eos>``. The vocabulary is the training file's types ordered by
descending training frequency, then alphabetically (the same ids on every machine);
validation and test words outside it become ``<unk>`` (an error when the training file has
no ``<unk>``). Files are read through ``harness.data.text.read_text`` (one line naming the
file for an empty, binary or non-UTF-8 file; a BOM is dropped) in blocks of lines, so the
103M-token WikiText-103 never exists as one list of words.

A missing file is one line naming the corpus, the paths tried and where to get it.
``python -m harness.data --data-dir DIR [NAME ...]`` prints the token counts and
vocabulary size the loader reports for each corpus found (the README's table).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Container, Iterator, Mapping
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harness.data import hub
from harness.data.location import DATA_DIR_ENV
from harness.data.text import read_text
from harness.errors import DataError, DataMissingError

if TYPE_CHECKING:
    from torch import Tensor

EOS = "<eos>"
UNK = "<unk>"
SPLITS = ("train", "valid", "test")
HUB_SPLITS = {"train": "train", "valid": "validation", "test": "test"}
HUB_PREFIX = "hub:"
_BLOCK = 1 << 22  # characters of text split into words at a time
_WHERE = f"pass --data-dir, the spec's data_dir or {DATA_DIR_ENV}"


@dataclass(frozen=True)
class NamedCorpus:
    """A corpus the harness knows by name: its files, where they are looked for, its hub
    dataset (if any) and where to get it."""

    name: str
    title: str
    filenames: Mapping[str, str]  # split -> file name
    folders: tuple[str, ...]  # sub-folders of the data directory tried in order ("" = itself)
    hub: tuple[str, str] | None  # (dataset, configuration) on the Hugging Face hub
    how_to_get: str

    def candidates(self, root: Path, split: str) -> list[Path]:
        name = self.filenames[split]
        return [root / folder / name if folder else root / name for folder in self.folders]

    def hub_source(self, split: str) -> str:
        dataset, config = self.hub  # type: ignore[misc]
        return f"{HUB_PREFIX}{dataset}/{config}/{HUB_SPLITS[split]}"

    def hub_call(self) -> str:
        dataset, config = self.hub  # type: ignore[misc]
        return f"datasets.load_dataset('{dataset}', '{config}')"


def _wikitext(size: str) -> NamedCorpus:
    return NamedCorpus(
        name=f"wikitext{size}",
        title=f"WikiText-{size}",
        filenames={split: f"wiki.{split}.tokens" for split in SPLITS},
        folders=(f"wikitext-{size}", ""),
        hub=("Salesforce/wikitext", f"wikitext-{size}-v1"),
        how_to_get=(
            f"get the tokenized WikiText-{size} v1 release (wikitext-{size}-v1.zip, which "
            f"unpacks to wikitext-{size}/; not the raw release) or the Hugging Face dataset "
            f"Salesforce/wikitext, configuration wikitext-{size}-v1, and {_WHERE}"
        ),
    )


CORPORA: dict[str, NamedCorpus] = {
    "ptb": NamedCorpus(
        name="ptb",
        title="PTB",
        filenames={split: f"ptb.{split}.txt" for split in SPLITS},
        folders=("ptb", ""),
        hub=None,
        how_to_get=(
            "get Mikolov's simple-examples PTB (the 'ptb_text_only' dataset on the Hugging "
            "Face hub, or data/ptb.*.txt in 'simple-examples.tgz') and " + _WHERE
        ),
    ),
    "wikitext2": _wikitext("2"),
    "wikitext103": _wikitext("103"),
}
"""The named corpora (``corpus: <name>`` in a spec)."""


def describe(corpus: str | Mapping[str, str]) -> str:
    """How a corpus is named in messages: ``corpus wikitext2`` or ``corpus files``."""
    return f"corpus {corpus}" if isinstance(corpus, str) else "corpus files"


def named(corpus: str) -> NamedCorpus:
    if corpus not in CORPORA:
        raise DataError(f"unknown corpus {corpus!r}; known: {', '.join(CORPORA)}, or "
                        "{train: FILE, valid: FILE, test: FILE}")
    return CORPORA[corpus]


# ---- which files a corpus reads ------------------------------------------------------------
def corpus_files(corpus: str | Mapping[str, str], root: Path | None) -> dict[str, Path | str]:
    """{split: local path, or the hub source's name} of ``corpus`` under the data folder
    ``root`` (None: none given); DataMissingError (one line: the corpus, the paths tried,
    where to get it) when a file is absent."""
    if not isinstance(corpus, str):
        return _explicit_files(corpus, root)
    spec = named(corpus)
    if root is None:
        if spec.hub is None:
            raise DataMissingError(f"{describe(corpus)}: no data directory given; "
                                   f"{spec.how_to_get}")
        return _hub_or_missing(spec, "no data directory given")
    found: dict[str, Path] = {}
    missing: list[tuple[str, list[Path]]] = []
    for split in SPLITS:
        tried = spec.candidates(root, split)
        hit = next((p for p in tried if p.is_file()), None)
        if hit is None:
            missing.append((split, tried))
        else:
            found[split] = hit
    if not missing:
        return dict(found)
    split, tried = missing[0]
    looked = " and ".join(str(p) for p in tried)
    if found or spec.hub is None:  # some files here, or no hub: the first one missing
        raise DataMissingError(f"{describe(corpus)}: {spec.title} file "
                               f"{spec.filenames[split]} not found (looked in {looked}); "
                               f"{spec.how_to_get}")
    names = ", ".join(spec.filenames[split] for split in SPLITS)
    folders = " and ".join(str(p.parent) for p in missing[0][1])
    return _hub_or_missing(spec, f"looked for {names} in {folders}")


def _hub_or_missing(spec: NamedCorpus, looked: str) -> dict[str, Path | str]:
    """The hub sources of ``spec`` when the hub can be asked, else DataMissingError."""
    if spec.hub is None:
        raise DataMissingError(f"corpus {spec.name}: {spec.title} files not found: {looked}; "
                               f"{spec.how_to_get}")
    reason = hub.unavailable()
    if reason is not None:
        raise DataMissingError(_missing(spec, looked, reason))
    sources = {split: spec.hub_source(split) for split in SPLITS}
    for source in sources.values():
        _HUB_CONTEXT[source] = (spec, looked)
    return dict(sources)


def _missing(spec: NamedCorpus, looked: str, reason: str) -> str:
    return (f"corpus {spec.name}: {spec.title} files not found: {looked} ({reason}); "
            f"{spec.how_to_get}, or {hub.advice(spec.hub_call(), reason)}")


def _explicit_files(corpus: Mapping[str, str], root: Path | None) -> dict[str, Path | str]:
    files: dict[str, Path | str] = {}
    for split in SPLITS:
        given = Path(corpus[split]).expanduser()
        if not given.is_absolute():
            if root is None:
                raise DataMissingError(f"corpus files: {split} file {corpus[split]!r} is "
                                       f"relative to the data directory, and none was given "
                                       f"({_WHERE})")
            given = root / given
        if not given.is_file():
            where = "" if root is None else f" (paths are relative to the data directory {root})"
            raise DataMissingError(f"corpus files: {split} file {given} not found{where}")
        files[split] = given
    return files


# ---- reading -------------------------------------------------------------------------------
def _fetch_hub(source: str) -> str:
    """The text of a hub split (its rows are the release file's lines), cached."""
    if source not in _HUB_TEXT:
        dataset, config, split = source[len(HUB_PREFIX):].rsplit("/", 2)

        def fetch() -> list[str]:
            import datasets  # optional (the `glue` extra)

            return list(datasets.load_dataset(dataset, config, split=split)["text"])

        rows, reason = hub.attempt(fetch)
        if rows is None:
            if source in _HUB_CONTEXT:  # the corpus and the paths tried before the hub
                raise DataMissingError(_missing(*_HUB_CONTEXT[source], reason))
            call = f"datasets.load_dataset('{dataset}', '{config}')"
            raise DataMissingError(f"{source}: not found ({reason}); "
                                   f"{hub.advice(call, reason)}, or put the release files "
                                   f"in the data directory")
        _HUB_TEXT[source] = "".join(r if r.endswith("\n") else r + "\n" for r in rows)
    return _HUB_TEXT[source]


_HUB_TEXT: dict[str, str] = {}
_HUB_CONTEXT: dict[str, tuple[NamedCorpus, str]] = {}  # hub source -> (corpus, paths tried)


def read_corpus_text(where: Path | str, what: str = "corpus file") -> str:
    """The text of one split: a local file (checked by ``read_text``) or a hub source."""
    if isinstance(where, str):
        return _fetch_hub(where)
    return read_text(where, what)


def word_blocks(text: str) -> Iterator[list[str]]:
    """The words of ``text`` with ``<eos>`` at each line end, a block of lines at a time
    (the concatenation is ``text.replace("\\n", " <eos> ").split()`` with a final newline
    supplied when missing)."""
    if not text.endswith("\n"):
        text += "\n"
    start, n = 0, len(text)
    while start < n:
        end = text.find("\n", min(start + _BLOCK, n) - 1) + 1
        yield text[start:end].replace("\n", f" {EOS} ").split()
        start = end


def build_vocab(counts: Mapping[str, int]) -> list[str]:
    """Types by descending count, ties broken alphabetically (deterministic)."""
    return sorted(counts, key=lambda w: (-counts[w], w))


def encode(text: str, word_to_id: Mapping[str, int]) -> np.ndarray:
    """Token ids (int64) of ``text``; words outside ``word_to_id`` become ``<unk>`` (-1
    when there is none: the caller checks)."""
    unk = word_to_id.get(UNK, -1)
    lookup = word_to_id.get
    parts = [np.fromiter(map(lookup, words, repeat(unk, len(words))), dtype=np.int64,
                         count=len(words)) for words in word_blocks(text)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class LMCorpus:
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


def _oov(where: Path | str, text: str, vocab: Container[str], train: Path | str) -> None:
    for words in word_blocks(text):
        unseen = next((w for w in words if w not in vocab), None)
        if unseen is not None:
            raise DataError(f"{where}: word {unseen!r} is not in the training vocabulary of "
                            f"{train}, which has no {UNK} to map it to")


def load_files(files: Mapping[str, Path | str]) -> LMCorpus:
    """Read the three splits ``files`` (from ``corpus_files``) into an ``LMCorpus``."""
    import torch

    texts = {split: read_corpus_text(files[split]) for split in SPLITS}
    counts: Counter[str] = Counter()
    for words in word_blocks(texts["train"]):
        counts.update(words)
    vocab = build_vocab(counts)
    word_to_id = {w: i for i, w in enumerate(vocab)}
    streams = {}
    for split in SPLITS:
        if UNK not in word_to_id and split != "train":
            _oov(files[split], texts[split], word_to_id, files["train"])
        streams[split] = torch.from_numpy(encode(texts[split], word_to_id))
    return LMCorpus(vocab, word_to_id, streams["train"], streams["valid"], streams["test"])


_TOKEN_COUNTS: dict[tuple[str, int, int], int] = {}


def _count_key(where: Path | str) -> tuple[str, int, int]:
    if isinstance(where, str):
        return (where, 0, 0)
    try:
        stat = where.stat()
    except OSError:
        return (str(where), -1, -1)
    return (str(where), stat.st_size, stat.st_mtime_ns)


def token_count(where: Path | str) -> int:
    """Tokens of one split (``<eos>`` included), as the task's stream has them; counted
    once per file version (``check_files`` counts them too)."""
    key = _count_key(where)
    if key not in _TOKEN_COUNTS:
        _TOKEN_COUNTS[key] = sum(len(w) for w in word_blocks(read_corpus_text(where)))
    return _TOKEN_COUNTS[key]


def check_files(files: Mapping[str, Path | str], min_tokens: Mapping[str, int]
                ) -> dict[str, int]:
    """Validate the three splits for a cell before any training: readable UTF-8 text (or a
    hub split that loads), at least ``min_tokens[split]`` tokens each (``<eos>``
    included), and no word outside the training vocabulary unless it has ``<unk>``.
    Returns the token counts; raises DataError naming the file and the problem."""
    texts = {split: read_corpus_text(where) for split, where in files.items()}
    vocab: set[str] = set()
    counts: dict[str, int] = {}
    for words in word_blocks(texts["train"]):
        vocab.update(words)
    for split, where in files.items():
        counts[split] = sum(len(words) for words in word_blocks(texts[split]))
        _TOKEN_COUNTS[_count_key(where)] = counts[split]
        need = min_tokens.get(split, 2)
        if counts[split] < need:
            raise DataError(f"{where}: {counts[split]} tokens; the spec needs at least {need} "
                            f"({split} split: batch and evaluation geometry)")
        if split != "train" and UNK not in vocab:
            _oov(where, texts[split], vocab, files["train"])
    return counts


def load_corpus(corpus: str | Mapping[str, str], root: str | os.PathLike[str] | None
                ) -> LMCorpus:
    """``corpus`` (a name or explicit files) under the data folder ``root``."""
    return load_files(corpus_files(corpus, None if root is None else Path(root).expanduser()))
