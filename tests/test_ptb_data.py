"""PTB loader: token counts, vocabulary, data-dir precedence, missing-file error, size axis."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import DATA, needs_ptb

from harness.data.ptb import (
    ENV_VAR,
    DataMissingError,
    first_tokens,
    load_ptb,
    resolve_data_dir,
)


@pytest.fixture(scope="module")
def corpus():
    return load_ptb(DATA)


@needs_ptb
def test_token_counts_and_vocab(corpus) -> None:
    assert (len(corpus.train), len(corpus.valid), len(corpus.test)) == (929_589, 73_760, 82_430)
    assert len(corpus.vocab) == 10_000 and len(set(corpus.vocab)) == 10_000
    assert {"<unk>", "<eos>"} <= set(corpus.word_to_id)
    assert all(corpus.word_to_id[w] == i for i, w in enumerate(corpus.vocab))
    assert corpus.train.dtype == torch.long and corpus.train.dim() == 1
    eos = corpus.eos_id
    for stream in (corpus.train, corpus.valid, corpus.test):
        assert int(stream[-1]) == eos
        assert 0 <= int(stream.min()) and int(stream.max()) < 10_000
    assert int((corpus.train == eos).sum()) == 42_068  # one per line
    assert corpus.vocab[0] == "the"  # most frequent first


@needs_ptb
def test_flat_layout_and_determinism(tmp_path: Path, corpus) -> None:
    for split in ("train", "valid", "test"):
        name = f"ptb.{split}.txt"
        (tmp_path / name).write_bytes((DATA / "ptb" / name).read_bytes())
    flat = load_ptb(tmp_path)
    assert flat.vocab == corpus.vocab and torch.equal(flat.test, corpus.test)


def test_tiny_corpus_layout(tmp_path: Path) -> None:
    (tmp_path / "ptb").mkdir()
    texts = {"train": " a b a <unk> \n b c \n", "valid": " a z \n", "test": " c \n"}
    for split, text in texts.items():
        (tmp_path / "ptb" / f"ptb.{split}.txt").write_text(text)
    c = load_ptb(tmp_path)
    assert c.vocab == ["<eos>", "a", "b", "<unk>", "c"]  # frequency, then alphabetical
    assert c.valid.tolist() == [1, 3, 0]  # unseen 'z' -> <unk>
    assert c.train.tolist() == [1, 2, 1, 3, 0, 2, 4, 0]


def test_missing_file_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(DataMissingError) as err:
        load_ptb(tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "ptb.train.txt" in msg and str(tmp_path) in msg
    assert "--data-dir" in msg and ENV_VAR in msg and "ptb_text_only" in msg
    assert isinstance(err.value, FileNotFoundError)


def test_resolve_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "/env")
    assert resolve_data_dir("/cli", "/spec") == Path("/cli")
    assert resolve_data_dir(None, "/spec") == Path("/spec")
    assert resolve_data_dir(None, None) == Path("/env")
    monkeypatch.delenv(ENV_VAR)
    with pytest.raises(DataMissingError, match="--data-dir"):
        resolve_data_dir(None, None)


def test_first_tokens_sizes() -> None:
    train = torch.arange(1000)
    assert len(first_tokens(train, 100)) == 100
    assert len(first_tokens(train, 0.25)) == 250
    assert len(first_tokens(train, 1.0)) == 1000
    assert torch.equal(first_tokens(train, 10), train[:10])
    for bad in (0, 1, 1001, 0.0, 1.5, -0.1):
        with pytest.raises(ValueError):
            first_tokens(train, bad)
    with pytest.raises(TypeError):
        first_tokens(train, True)
