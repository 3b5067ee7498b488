"""Named language-model corpora (harness.data.corpora): WikiText in its release layout and
names, explicit files, the hub fallback's text, the missing-data messages, and what a
corpus does to cell ids (the default stays out of them; another corpus means new cells)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch
from conftest import DATA, needs_ptb

from harness.data import corpora, hub
from harness.data.corpora import (
    CORPORA,
    corpus_files,
    encode,
    load_corpus,
    load_files,
    word_blocks,
)
from harness.errors import DataError, DataMissingError
from harness.tasks.ptb_lstm.config import PtbLstmParams

# The tokenized v1 format: a blank first line, " = Title = " headings, " = = Section = = ",
# blank lines (a single space) between paragraphs, lines starting and ending with a space,
# @-@ / @,@ / @.@ separators, <unk>.
WIKI = {
    "train": (" \n = Valkyria Chronicles = \n \n the game is a role @-@ playing game . \n"
              " \n = = Gameplay = = \n \n it sold 1 @,@ 000 copies in <unk> . \n"),
    "valid": " \n = Tower = \n \n the tower is 3 @.@ 5 m tall . \n",
    "test": " \n = Robert = \n \n robert is an actor . \n",
}


def write_wiki(root: Path, folder: str | None = "wikitext-2", texts=WIKI) -> Path:
    where = root / folder if folder else root
    where.mkdir(parents=True, exist_ok=True)
    for split, text in texts.items():
        (where / f"wiki.{split}.tokens").write_text(text, encoding="utf-8")
    return where


def _offline_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub unreachable, and the offline switches unset (as on a fresh machine)."""
    monkeypatch.setattr(hub, "reachable", lambda timeout=3.0: False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)


def test_wikitext_release_layout_and_names(tmp_path: Path) -> None:
    write_wiki(tmp_path)
    files = corpus_files("wikitext2", tmp_path)
    assert files == {s: tmp_path / "wikitext-2" / f"wiki.{s}.tokens"
                     for s in ("train", "valid", "test")}
    c = load_corpus("wikitext2", tmp_path)
    # Every line, blank ones included, ends in <eos>. Counted by hand: train has 8 lines
    # (4 blank) of 4 + 9 + 5 + 9 = 27 words; valid 4 lines of 3 + 9 words; test 4 of 3 + 5.
    train_words = WIKI["train"].split()
    assert len(c.train) == 27 + 8 and len(c.valid) == 12 + 4 and len(c.test) == 8 + 4
    assert c.vocab[:2] == ["<eos>", "="]  # the most frequent types: 8 and 6 times
    words = [c.vocab[i] for i in c.train[:8].tolist()]
    assert words == ["<eos>", "=", "Valkyria", "Chronicles", "=", "<eos>", "<eos>", "the"]
    assert "@-@" in c.word_to_id and "<unk>" in c.word_to_id
    # valid words unseen in training become <unk>
    assert int((c.valid == c.unk_id).sum()) == sum(
        w not in set(train_words) for w in WIKI["valid"].split())
    # the same files directly in the data directory are the same corpus
    flat = tmp_path / "flat"
    write_wiki(flat, None)
    assert torch.equal(load_corpus("wikitext2", flat).train, c.train)


def test_blocks_are_the_plain_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "".join(f" line {i} has {'x ' * (i % 7)}words \n" + (" \n" if i % 3 else "")
                   for i in range(300))
    plain = text.replace("\n", " <eos> ").split()
    monkeypatch.setattr(corpora, "_BLOCK", 37)  # many blocks, cut inside lines
    assert [w for b in word_blocks(text) for w in b] == plain
    assert [w for b in word_blocks(text.rstrip("\n")) for w in b] == plain  # no final newline
    ids = {w: i for i, w in enumerate(sorted(set(plain)))}
    assert encode(text, ids).tolist() == [ids[w] for w in plain]


def test_missing_wikitext_names_corpus_paths_and_source(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    _offline_hub(monkeypatch)
    with pytest.raises(DataMissingError) as err:
        corpus_files("wikitext2", tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("corpus wikitext2:")
    for name in ("wiki.train.tokens", "wiki.valid.tokens", "wiki.test.tokens"):
        assert name in msg
    assert str(tmp_path / "wikitext-2") in msg and str(tmp_path) in msg
    assert "wikitext-2-v1" in msg and "Salesforce/wikitext" in msg and "unreachable" in msg
    assert "ptb" not in msg.lower()  # never sends a WikiText user to download PTB
    # one file missing of three: that file, both places looked
    where = write_wiki(tmp_path)
    (where / "wiki.valid.tokens").unlink()
    with pytest.raises(DataMissingError, match=r"corpus wikitext2: WikiText-2 file "
                       r"wiki\.valid\.tokens not found \(looked in .*wikitext-2/wiki\.valid"
                       r"\.tokens and .*/wiki\.valid\.tokens\)"):
        corpus_files("wikitext2", tmp_path)
    with pytest.raises(DataMissingError, match="corpus wikitext103: .*wikitext-103"):
        corpus_files("wikitext103", tmp_path)
    with pytest.raises(DataMissingError, match="corpus ptb: PTB file ptb.train.txt"):
        corpus_files("ptb", tmp_path)


@pytest.mark.parametrize("installed", [True, False])
def test_hub_advice_is_true_of_this_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            installed: bool) -> None:
    monkeypatch.setattr(hub, "datasets_installed", lambda: installed)
    _offline_hub(monkeypatch)
    with pytest.raises(DataMissingError) as err:
        corpus_files("wikitext2", tmp_path)
    msg = str(err.value)
    assert ("pip install datasets" in msg) == (not installed)
    assert ("unreachable" in msg) == installed


def test_datasets_folder_in_cwd_is_not_an_installed_package(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """A stray ``datasets/`` folder (common in ML projects) must not make the messages
    claim the package is installed."""
    from importlib import metadata

    (tmp_path / "datasets").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "datasets", raising=False)
    real = metadata.version

    def version(name: str) -> str:
        if name == "datasets":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(metadata, "version", version)
    assert not hub.datasets_installed()


def test_hub_rows_are_the_release_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Salesforce/wikitext holds one row per line of the release files (non-blank rows end
    with their newline, blank ones are ""): read from the hub, the corpus is the files'."""
    calls = []

    def load_dataset(name, config, split):
        calls.append((name, config, split))
        key = {"train": "train", "validation": "valid", "test": "test"}[split]
        rows = [line + "\n" if line.strip() else "" for line in WIKI[key].split("\n")[:-1]]
        return {"text": rows}

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    monkeypatch.setattr(hub, "datasets_installed", lambda: True)
    monkeypatch.setattr(hub, "reachable", lambda timeout=3.0: True)
    monkeypatch.setattr(corpora, "_HUB_TEXT", {})
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    files = corpus_files("wikitext2", tmp_path)  # no local files: the hub
    assert files == {"train": "hub:Salesforce/wikitext/wikitext-2-v1/train",
                     "valid": "hub:Salesforce/wikitext/wikitext-2-v1/validation",
                     "test": "hub:Salesforce/wikitext/wikitext-2-v1/test"}
    from_hub = load_files(files)
    assert ("Salesforce/wikitext", "wikitext-2-v1", "validation") in calls
    local = load_corpus("wikitext2", write_wiki(tmp_path / "local", None))
    assert from_hub.vocab == local.vocab
    assert all(torch.equal(getattr(from_hub, s), getattr(local, s))
               for s in ("train", "valid", "test"))


def test_hub_failure_names_the_corpus_and_the_paths(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    def load_dataset(*args, **kwargs):
        raise ValueError("Dataset 'Salesforce/wikitext' doesn't exist on the Hub")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    monkeypatch.setattr(hub, "datasets_installed", lambda: True)
    monkeypatch.setattr(hub, "reachable", lambda timeout=3.0: True)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(corpora, "_HUB_TEXT", {})
    files = corpus_files("wikitext2", tmp_path)  # the hub answers: its sources
    with pytest.raises(DataMissingError) as err:
        load_files(files)  # ... but the load fails: said with the corpus and the paths
    msg = str(err.value)
    assert msg.startswith("corpus wikitext2:") and str(tmp_path) in msg and "\n" not in msg
    assert "hub fallback failed: ValueError: Dataset" in msg and "the hub was reachable" in msg
    assert "pip install" not in msg and "go online" not in msg
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the switch turns the fallback off
    with pytest.raises(DataMissingError, match="HF_HUB_OFFLINE is set.*unset HF_HUB_OFFLINE"):
        corpus_files("wikitext2", tmp_path)


def test_explicit_files(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    for split, text in (("train", "a b a <unk>\nb c\n"), ("valid", "a z\n"), ("test", "c\n")):
        (tmp_path / "mine" / f"{split}.txt").write_text(text)
    spec = {s: f"mine/{s}.txt" for s in ("train", "valid", "test")}
    c = load_corpus(spec, tmp_path)
    assert c.vocab == ["<eos>", "a", "b", "<unk>", "c"]
    assert c.valid.tolist() == [1, 3, 0]
    absolute = {s: str(tmp_path / "mine" / f"{s}.txt") for s in spec}
    assert torch.equal(load_corpus(absolute, None).train, c.train)
    with pytest.raises(DataMissingError, match="corpus files: valid file .*nope.txt not found"):
        corpus_files({**spec, "valid": "nope.txt"}, tmp_path)
    with pytest.raises(DataMissingError, match="relative to the data directory, and none"):
        corpus_files(spec, None)


def test_unknown_word_without_unk_is_named(tmp_path: Path) -> None:
    for split, text in (("train", "a b\n"), ("valid", "a q\n"), ("test", "b\n")):
        (tmp_path / f"{split}.txt").write_text(text)
    spec = {s: f"{s}.txt" for s in ("train", "valid", "test")}
    with pytest.raises(DataError, match=r"valid.txt: word 'q' is not in the training"):
        load_corpus(spec, tmp_path)


def test_corpus_field_names_and_errors() -> None:
    assert PtbLstmParams().corpus == "ptb"
    assert PtbLstmParams(corpus="wikitext103").corpus == "wikitext103"
    files = PtbLstmParams(corpus={"train": "t", "valid": "v", "test": "x"})
    assert files.corpus_key() == {"train": "t", "valid": "v", "test": "x"}
    with pytest.raises(ValueError, match="unknown corpus 'wikitext'.*did you mean"):
        PtbLstmParams(corpus="wikitext")
    with pytest.raises(ValueError):
        PtbLstmParams(corpus={"train": "t", "valid": "v"})
    assert set(CORPORA) == {"ptb", "wikitext2", "wikitext103"}
    assert {"restricted_ppl_valid", "restricted_ppl_test"} <= set(PtbLstmParams.metrics)
    assert not PtbLstmParams.higher_is_better["restricted_ppl_test"]


# ---- cell ids --------------------------------------------------------------------------------
def _ids(spec_dict: dict, data_dir: Path) -> list[str]:
    from harness.cells.data import CellData
    from harness.cells.grid import expand
    from harness.spec.loader import validate_spec as spec_from_dict

    spec = spec_from_dict(spec_dict)
    return [c.cell_id for c in expand(spec, data=CellData(data_dir))]


def _spec(**params) -> dict:
    return {"name": "ids", "task": {"name": "ptb_lstm", "params": {"emb_size": 16, **params}},
            "methods": [{"name": "baseline"}, {"name": "imm_sampled", "lambda": 0.2}],
            "sizes": [3000], "seeds": [0], "runs": 1, "tracking": {"enabled": False}}


@needs_ptb
def test_default_corpus_keeps_cell_ids_and_a_new_corpus_makes_new_cells(tmp_path: Path) -> None:
    from harness.cells.grid import cell_config
    from harness.spec.loader import validate_spec as spec_from_dict

    plain = _ids(_spec(), DATA)
    assert _ids(_spec(corpus="ptb"), DATA) == plain  # the default, written out
    spec = spec_from_dict(_spec())
    identity = cell_config(spec, spec.methods[0], 3000, 0, identity=True)
    assert set(identity["task"]["params"]) == {"emb_size"}  # no new key in the hashed form
    # another corpus: new cells; the same corpus with other bytes: new cells again
    root = tmp_path / "data"
    write_wiki(root, texts={s: (DATA / "ptb" / f"ptb.{s}.txt").read_text()
                            for s in ("train", "valid", "test")})  # PTB text, WikiText names
    wiki = _ids(_spec(corpus="wikitext2"), root)
    assert set(wiki).isdisjoint(plain)
    assert _ids(_spec(corpus="wikitext2"), root) == wiki
    path = root / "wikitext-2" / "wiki.valid.tokens"
    path.write_text(path.read_text() + " one more line \n")
    assert set(_ids(_spec(corpus="wikitext2"), root)).isdisjoint(wiki)
    # explicit files naming the PTB files: the same bytes, but another corpus setting
    explicit = {s: f"ptb/ptb.{s}.txt" for s in ("train", "valid", "test")}
    assert set(_ids(_spec(corpus=explicit), DATA)).isdisjoint(plain)


def test_params_flatten_to_valid_mlflow_keys() -> None:
    """Every field of the LM and GLUE params (a corpus of explicit files too) makes an
    MLflow param key MLflow accepts (a dict field keyed by "<unk>" once turned tracking off
    for a whole run)."""
    import re

    from harness.tasks.glue_bert.config import GlueBertParams
    from harness.tracking import flatten

    allowed = re.compile(r"^[A-Za-z0-9_\-. :/]+$")
    files = {"train": "a/t.txt", "valid": "a/v.txt", "test": "a/x.txt"}
    for params in (PtbLstmParams(), PtbLstmParams(corpus=files, restricted_arpa="k.arpa"),
                   GlueBertParams(tasks=["mnli", "stsb"])):
        keys = [k for k, _ in flatten({"task": {"params": params.model_dump(mode="json")}})]
        bad = [k for k in keys if not allowed.match(k)]
        assert not bad, bad
