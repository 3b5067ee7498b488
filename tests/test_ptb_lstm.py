"""The PTB LSTM language-model task: crosstalk gradient, induced-model sampling, the IMM
branch's isolation, checkpoint/resume, determinism and the smoke spec."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.methods.induced import Induced, crosstalk_cross_entropy
from harness.ngram.kneser_ney import KneserNeyBigram
from harness.registry import METHODS
from harness.spec import load_spec
from harness.tasks.base import CellRequest, make_generator
from harness.tasks.ptb_lstm.config import PtbLstmParams
from harness.tasks.ptb_lstm.model import LstmLm
from harness.tasks.ptb_lstm.sampler import ContextSampler
from harness.tasks.ptb_lstm.views import (
    LmViews,
    StaleModel,
    TrainContext,
    batchify,
    window_predictions,
)
from harness.tasks.ptb_lstm.windows import DedupMixture, DeviceWindows, sample_windows

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not (DATA / "ptb" / "ptb.train.txt").exists(),
                                reason="PTB data not available")

TINY = dict(emb_size=8, hidden_size=8, layers=1, dropout=0.3, bptt=10, batch_size=4,
            imm_window=5, imm_k=3, eval_batch_size=4, eval_tokens=1500,
            induced_eval_tokens=1500, max_epochs=3)


def make_method(name: str, lam: float | None = 0.2, **params):
    return METHODS.get(name)(METHODS.config(name)(**params), lam if name != "baseline" else None)


def tiny_context(stream: torch.Tensor, vocab: int, dropout: float = 0.0, window: int = 3,
                 init: float = 0.5) -> TrainContext:
    params = PtbLstmParams(emb_size=4, hidden_size=5, layers=2, dropout=dropout,
                           imm_window=window, imm_k=3, batch_size=2, bptt=4)
    torch.manual_seed(0)
    model = LstmLm(vocab, 4, 5, 2, dropout, init)
    model.dropout_generator = make_generator(torch.device("cpu"), "dropout")
    data = batchify(stream, 2)
    bigram = KneserNeyBigram.from_stream(stream, vocab)
    return TrainContext(params=params, model=model, bigram=bigram,
                        sampler=ContextSampler(stream, vocab, window),
                        generator=make_generator(torch.device("cpu"), "method"),
                        steps_per_epoch=5, stale=StaleModel(data, 4, vocab))


def random_stream(n: int, vocab: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(vocab, (n,), generator=torch.Generator().manual_seed(seed))


# ---- the crosstalk gradient and the induced model ------------------------------------------
def test_crosstalk_gradient_equals_autograd_on_a_tiny_lstm():
    ctx = tiny_context(random_stream(200, 6), 6)
    data = batchify(random_stream(200, 6), 2)
    views = LmViews(ctx, data[:, :4], data[:, 1:5], ctx.model.zero_state(2))
    induced = views.induced(4)
    target = views.restricted()
    params = list(ctx.model.parameters())
    ours = torch.autograd.grad(crosstalk_cross_entropy(target, induced).sum(), params,
                               retain_graph=True)
    # Direct: -sum P log mean_i Q_i, differentiated by autograd through the log of the mean.
    direct = -(target * induced.per_item().log()).sum()
    expected = torch.autograd.grad(direct, params)
    for a, b in zip(ours, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_sampled_induced_prediction_converges_to_the_exact_multiset_average():
    vocab = 5
    stream = random_stream(120, vocab, seed=3)
    ctx = tiny_context(stream, vocab, init=2.0)
    data = batchify(stream, 2)
    views = LmViews(ctx, data[:, :6], data[:, 1:7], ctx.model.zero_state(2))
    words, _ = views.distinct()
    with torch.no_grad():
        exact = torch.stack([
            window_predictions(ctx.model, ctx.sampler.windows(ctx.sampler.positions_of(int(w))))
            .mean(0) for w in words])
        errors = [float((views.induced(k).mixture() - exact).abs().max()) for k in (2, 20000)]
    assert errors[1] < 0.01 and errors[1] < errors[0] / 5, errors


@needs_data
def test_sampler_returns_only_positions_with_the_right_previous_word():
    from harness.tasks.ptb_lstm.corpus import load_corpus

    stream = load_corpus(str(DATA)).train[:20000]
    sampler = ContextSampler(stream, 10000, window=35)
    words = torch.unique(stream[100:400])
    pos = sampler.sample(words, 50, torch.Generator().manual_seed(0))
    assert bool((stream[pos - 1] == words[:, None]).all())
    assert int(pos.min()) >= 1
    windows = sampler.windows(pos)
    assert bool((windows[..., -1] == words[:, None]).all())
    # Windows start at or after 0 except for words with no other position.
    early = pos < 35
    assert bool((sampler.counts[words[early.any(1)]] <= 35).all())
    # The multiset: sampling frequencies follow the positions' multiplicities.
    w = int(torch.bincount(stream[35:-1]).argmax())
    assert int(sampler.counts[w]) == int((stream[35 - 1:-1] == w).sum())


def test_imm_branch_uses_no_dropout_and_leaves_the_main_state_untouched():
    vocab = 6
    stream = random_stream(200, vocab)
    ctx = tiny_context(stream, vocab, dropout=0.5)
    ctx.model.train()
    data = batchify(stream, 2)
    state = [(h + 0.3, c - 0.2) for h, c in ctx.model.zero_state(2)]
    views = LmViews(ctx, data[:, :4], data[:, 1:5], state)
    views.log_q()
    out = [t.clone() for pair in views.state_out for t in pair]
    dropout_rng = ctx.model.dropout_generator.get_state()
    gen = ctx.generator.get_state()
    induced = views.induced(3)
    assert torch.equal(ctx.model.dropout_generator.get_state(), dropout_rng)  # no dropout drawn
    assert all(torch.equal(a, b) for a, b in
               zip(out, [t for pair in views.state_out for t in pair], strict=True))
    assert torch.allclose(state[0][0], ctx.model.zero_state(2)[0][0] + 0.3)
    # The same positions through an eval-mode model give the same predictions.
    ctx.generator.set_state(gen)
    words, _ = views.distinct()
    pos = ctx.sampler.sample(words, 3, ctx.generator)
    ctx.model.eval()
    with torch.no_grad():
        expected = window_predictions(ctx.model, ctx.sampler.windows(pos.reshape(-1)))
    expected = expected.reshape(len(words), 3, vocab).mean(1)
    torch.testing.assert_close(induced.mixture().detach(), expected)
    assert isinstance(induced, Induced) and induced.index.shape == (2, 4)
    # The single-sample view of the batch's own contexts: no dropout, state untouched.
    ctx.model.train()
    own = views.log_q_imm()
    assert torch.equal(ctx.model.dropout_generator.get_state(), dropout_rng)
    assert all(torch.equal(a, b) for a, b in
               zip(out, [t for pair in views.state_out for t in pair], strict=True))
    with torch.no_grad():
        plain, _ = ctx.model(data[:, :4], state, dropout=False)
    torch.testing.assert_close(own.detach(), torch.log_softmax(plain, -1))


def test_checkpointed_mixture_has_the_gradient_of_one_batched_pass():
    """Accumulating the distinct windows chunk by chunk (the last chunk's graph kept, the
    others recomputed in the backward) changes memory, not the numbers."""
    vocab = 7
    stream = random_stream(300, vocab)
    ctx = tiny_context(stream, vocab)
    words = torch.arange(vocab)
    found = sample_windows(ctx.sampler.host_multiset, words, 4, ctx.generator)
    dev = DeviceWindows(found, ctx.sampler.padded, ctx.sampler.window)
    target = torch.softmax(torch.randn(vocab, vocab, generator=torch.Generator().manual_seed(1)),
                           -1)
    params = list(ctx.model.parameters())

    def grads(mixture):
        induced = Induced(probs=mixture[:, None], weights=torch.ones(vocab, 1))
        loss = crosstalk_cross_entropy(target, induced).sum()
        return loss.detach(), torch.autograd.grad(loss, params)

    flat = window_predictions(ctx.model, dev.tokens(0, len(found)))
    batched = flat.new_zeros(vocab, vocab).index_add(0, dev.owner, flat * dev.weight[:, None])
    loss_a, grads_a = grads(batched)
    for chunk in (3, 5, 100):  # several chunks, and one
        loss_b, grads_b = grads(DedupMixture.apply(dev, vocab, chunk, ctx.model, *params))
        torch.testing.assert_close(loss_b, loss_a)
        for a, b in zip(grads_a, grads_b, strict=True):
            torch.testing.assert_close(b, a)


# ---- whole cells on real data --------------------------------------------------------------
def tiny_task(**overrides):
    from harness.tasks.ptb_lstm.task import PtbLstmTask

    return PtbLstmTask(PtbLstmParams(**{**TINY, **overrides}), str(DATA))


@needs_data
def test_resume_from_a_checkpoint_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    from harness.tasks.ptb_lstm import train as train_module

    # Serialized IMM refreshes mid-epoch (its snapshot must be checkpointed); sampled IMM
    # and noising draw from the method generator; all draw dropout masks.
    for method in (make_method("imm_serialized", refresh_every=30),
                   make_method("imm_sampled", k=3, k_every=2)):
        whole = tiny_task().run(method, CellRequest(size=2000, seed=0, runs=1))
        request = CellRequest(size=2000, seed=0, runs=1, checkpoint_dir=tmp_path / method.name)
        original = train_module.Trainer.end_epoch

        def interrupted(self, original=original):
            original(self)
            if self.state.epoch == 2:
                self.save()
                raise KeyboardInterrupt

        monkeypatch.setattr(train_module.Trainer, "end_epoch", interrupted)
        with pytest.raises(KeyboardInterrupt):
            tiny_task(checkpoint=True).run(method, request)
        monkeypatch.setattr(train_module.Trainer, "end_epoch", original)
        assert list((tmp_path / method.name).rglob("run0.pt"))
        resumed = tiny_task(checkpoint=True).run(method, request)
        assert all(np.array_equal(resumed[k], whole[k]) for k in whole), method.name


@needs_data
def test_cells_are_deterministic_and_paired():
    task = tiny_task(max_epochs=1)
    request = CellRequest(size=3000, seed=1, runs=2)
    first = task.run(make_method("imm_sampled", k=3), request)
    again = task.run(make_method("imm_sampled", k=3), request)
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert first["test_ppl"][0] != first["test_ppl"][1]  # replicates differ
    # Fine-tuning mode: before the switch a regularised method trains as the baseline.
    tuned = tiny_task(max_epochs=1, finetune_below=1.0)
    base = tuned.run(make_method("baseline"), request)
    held = tuned.run(make_method("reverse_kd"), request)
    assert all(np.array_equal(base[k], held[k]) for k in base)
    # Once the threshold is crossed the lr reset applies to every method, the baseline
    # included (it is the control for the reset), so a reached threshold changes it.
    two = CellRequest(size=3000, seed=1, runs=1)
    plain = tiny_task(max_epochs=2).run(make_method("baseline"), two)
    reset = tiny_task(max_epochs=2, finetune_below=1e9).run(make_method("baseline"), two)
    assert not np.array_equal(plain["valid_ppl"], reset["valid_ppl"])


@needs_data
@pytest.mark.heavy
def test_smoke_spec_runs_all_six_methods(tmp_path, monkeypatch):
    from harness.runner import run_spec

    monkeypatch.chdir(tmp_path)
    spec = load_spec(ROOT / "specs" / "smoke" / "ptb.yaml",
                     overrides={"output_dir": str(tmp_path / "results")})
    summary = run_spec(spec, data_dir=str(DATA))
    records = [json.loads(p.read_text())
               for p in (tmp_path / "results" / "smoke_ptb" / "cells").glob("*.json")]
    records = [r for r in records if not r.get("unit")]  # warm-ups and tuning trials
    assert len(records) == 7, summary  # six methods and the lr-reset control
    assert {r["status"] for r in records} == {"ok"}, [r["reason"] for r in records]
    ppl = {r["label"]: r["metrics"]["test_ppl"][0] for r in records}
    assert all(1.0 < v < 10000 for v in ppl.values())
    assert ppl["interpolation"] < ppl["baseline"]  # a barely trained LSTM gains from KN


def test_stream_perplexity_equals_batch_one_unroll_one():
    """The paper's evaluation: batch 1, unroll 1, state carried through the whole stream."""
    import math

    from harness.tasks.ptb_lstm.evaluate import stream_ppl

    torch.manual_seed(0)
    model = LstmLm(30, 6, 6, 2, 0.0, 0.3)
    stream = random_stream(2501, 30)
    state, total = None, 0.0
    with torch.no_grad():
        for t in range(len(stream) - 1):
            logits, state = model(stream[t:t + 1].view(1, 1), state, dropout=False)
            total -= torch.log_softmax(logits[0, 0], -1)[stream[t + 1]].item()
    expected = math.exp(total / (len(stream) - 1))
    assert stream_ppl(model, stream, make_method("baseline"), None) == pytest.approx(expected,
                                                                                     rel=1e-5)
