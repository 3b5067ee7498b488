"""Every saving of the PTB training step is exact: the previous code is kept below as the
reference (its LmViews, stale model, checkpointed mixture and clip, verbatim but for
names), and the new step's losses and gradients must equal it within float rounding on
a tiny LSTM, step after step, for every method and schedule.

Which test proves which saving (issue 16):
1. distinct windows once, weighted by their count: test_step_gradients_equal_the_previous_code
   [imm_sampled k-steps] and test_each_distinct_window_runs_once;
2. no window run twice (the grouped term), and the lazily differentiated mixture reusing
   its last chunk's graph: test_each_distinct_window_runs_once,
   test_dedup_mixture_reuses_the_last_chunk;
3. the clip: test_clip_equals_the_float64_clip;
4. serialized IMM's kept refresh outputs and per-word ratios:
   test_step_gradients_equal_the_previous_code [imm_serialized ...] and
   test_stale_cache_changes_no_bit;
5. reverse-KD's shared decoder products and sparse KN target:
   test_step_gradients_equal_the_previous_code [reverse_kd];
6. device-side KN rows and no host reads in the step: test_device_rows_equal_host_rows,
   test_no_host_reads_in_the_step.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from harness.methods.induced import EPS, Induced
from harness.ngram.kn_device import DeviceBigram, RowPlan
from harness.ngram.kneser_ney import KneserNeyBigram
from harness.registry import METHODS
from harness.tasks.base import Views, make_generator
from harness.tasks.ptb_lstm import objectives, windows
from harness.tasks.ptb_lstm.config import PtbLstmParams
from harness.tasks.ptb_lstm.model import LstmLm, State, detach_state
from harness.tasks.ptb_lstm.plan import plan_batches
from harness.tasks.ptb_lstm.sampler import ContextSampler
from harness.tasks.ptb_lstm.train import clipped
from harness.tasks.ptb_lstm.views import (
    LmViews,
    StaleModel,
    TrainContext,
    batchify,
    chunks,
    induced_table,
)


# ==== the previous code (reference) =========================================================
def old_clipped(grads: list[Tensor | None], params: list[Tensor], limit: float) -> list[Tensor]:
    grads = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params, strict=True)]
    norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads))
    scale = min(1.0, limit / (float(norm) + 1e-6))
    return [g * scale for g in grads]


def old_window_predictions(model: LstmLm, windows: Tensor) -> Tensor:
    hidden, _ = model.hidden(windows, None, dropout=False)
    return torch.softmax(model.decoder(hidden[:, -1]), -1)


class OldSequentialMixture(torch.autograd.Function):
    @staticmethod
    def forward(ctx, windows: Tensor, model: LstmLm, *params: Tensor) -> Tensor:
        ctx.model, ctx.params = model, params
        ctx.save_for_backward(windows)
        k = windows.shape[1]
        total = old_window_predictions(model, windows[:, 0])
        for j in range(1, k):
            total += old_window_predictions(model, windows[:, j])
        return total / k

    @staticmethod
    def backward(ctx, grad: Tensor):
        (windows,) = ctx.saved_tensors
        k = windows.shape[1]
        sums: list[Tensor | None] = [None] * len(ctx.params)
        for j in range(k):
            with torch.enable_grad():
                probs = old_window_predictions(ctx.model, windows[:, j])
                parts = torch.autograd.grad(probs, ctx.params, grad / k, allow_unused=True)
            sums = [p if s is None else s if p is None else s + p
                    for s, p in zip(sums, parts, strict=True)]
        return (None, None, *sums)


def old_induced_mixture(model: LstmLm, windows: Tensor) -> Tensor:
    if windows.shape[1] == 1:
        return old_window_predictions(model, windows[:, 0])
    params = [p for p in model.parameters() if p.requires_grad]
    return OldSequentialMixture.apply(windows, model, *params)


class OldStale:
    def __init__(self, data: Tensor, bptt: int, vocab_size: int) -> None:
        self.data, self.bptt, self.vocab_size = data, bptt, vocab_size
        self.model: LstmLm | None = None
        self.table = None
        self.state: State | None = None

    def refresh(self, model: LstmLm) -> None:
        if self.model is None:
            self.model = copy.deepcopy(model)
        self.model.load_state_dict(model.state_dict())
        self.model.eval()
        self.table = induced_table(self.model, self.data, self.bptt, self.vocab_size)

    def reset_state(self) -> None:
        self.state = None

    @torch.no_grad()
    def correction(self, inputs: Tensor) -> Tensor:
        logits, self.state = self.model(inputs, self.state, dropout=False)
        return torch.softmax(logits, -1) / self.table.rows(inputs).clamp_min(EPS)


class OldViews(Views):
    """The previous LmViews (noising left out: it did not change)."""

    loss_form = "additive"
    noising = "task"

    def __init__(self, ctx: TrainContext, stale: OldStale, inputs: Tensor, targets: Tensor,
                 state: State) -> None:
        self.ctx, self.stale = ctx, stale
        self.inputs = self.model_inputs = inputs
        self.targets = targets
        self.state_in = state
        self.state_out: State | None = None
        self.generator = ctx.generator
        self.refresh_period = ctx.steps_per_epoch
        self._log_q: Tensor | None = None
        self._restricted: Tensor | None = None
        self._distinct: tuple[Tensor, Tensor] | None = None

    def log_q(self) -> Tensor:
        if self._log_q is None:
            logits, state = self.ctx.model(self.model_inputs, self.state_in, dropout=True)
            self.state_out = detach_state(state)
            self._log_q = F.log_softmax(logits, -1)
        return self._log_q

    def log_q_imm(self) -> Tensor:
        logits, _ = self.ctx.model(self.inputs, self.state_in, dropout=False)
        return F.log_softmax(logits, -1)

    def primary_loss(self, targets: Tensor) -> Tensor:
        return -self.log_q().gather(-1, targets[..., None]).squeeze(-1)

    def reduce(self, per_item: Tensor) -> Tensor:
        return per_item.sum() / per_item.shape[0]

    def distinct(self) -> tuple[Tensor, Tensor]:
        if self._distinct is None:
            self._distinct = torch.unique(self.inputs, return_inverse=True)
        return self._distinct

    def restricted(self) -> Tensor:
        if self._restricted is None:
            words, index = self.distinct()
            self._restricted = self.ctx.bigram.rows(words.cpu())[index]
        return self._restricted

    def induced(self, k: int | None) -> Induced:
        k = k or self.ctx.params.imm_k
        words, index = self.distinct()
        positions = self.ctx.sampler.sample(words, k, self.generator)
        mixture = old_induced_mixture(self.ctx.model, self.ctx.sampler.windows(positions))
        ones = torch.ones(len(words), 1)
        return Induced(probs=mixture[:, None], weights=ones, index=index)

    def stale_correction(self, refresh: bool) -> Tensor:
        if refresh or self.stale.model is None:
            self.stale.refresh(self.ctx.model)
        return self.stale.correction(self.inputs)


def old_gradients(method, views: OldViews, step: int, params: list[Tensor]):
    """The previous Trainer.step's losses and raw gradients (before the clip)."""
    primary, term = method.loss_parts(views, step)
    gp = torch.autograd.grad(primary, params, retain_graph=term is not None, allow_unused=True)
    gp = [torch.zeros_like(p) if g is None else g for g, p in zip(gp, params, strict=True)]
    if term is None:
        return primary.detach(), None, gp, None
    gt = torch.autograd.grad(term, params, allow_unused=True)
    gt = [torch.zeros_like(p) if g is None else g for g, p in zip(gt, params, strict=True)]
    return primary.detach(), term.detach(), gp, gt


# ==== a tiny LSTM on a stream with repeated contexts ========================================
VOCAB = 11


def tiny_stream(n: int = 600, seed: int = 0) -> Tensor:
    """A stream with skewed word frequencies (some words have few positions, so k draws
    repeat), and the Kneser-Ney rows have stored entries and backoff."""
    gen = torch.Generator().manual_seed(seed)
    weights = torch.tensor([8.0, 5, 4, 3, 2, 1, 1, 0.5, 0.3, 0.2, 0.1])
    return torch.multinomial(weights, n, replacement=True, generator=gen)


def contexts(stream: Tensor, refresh_every_cache: float = 8192.0, dropout: float = 0.3,
             window: int = 4, tie: bool = False) -> tuple[TrainContext, OldStale, Tensor]:
    params = PtbLstmParams(emb_size=6, hidden_size=6, layers=2, dropout=dropout,
                           imm_window=window, imm_k=5, batch_size=3, bptt=5,
                           tie_weights=tie)
    torch.manual_seed(0)
    model = LstmLm(VOCAB, 6, 6, 2, dropout, 0.4, tie_weights=tie)
    model.dropout_generator = make_generator(torch.device("cpu"), "dropout")
    data = batchify(stream, 3)
    bigram = KneserNeyBigram.from_stream(stream, VOCAB)
    spe = -(-(data.shape[1] - 1) // 5)
    ctx = TrainContext(params=params, model=model, bigram=bigram,
                       sampler=ContextSampler(stream, VOCAB, window),
                       generator=make_generator(torch.device("cpu"), "method"),
                       steps_per_epoch=spe,
                       stale=StaleModel(data, 5, VOCAB, refresh_every_cache))
    ctx.plans = plan_batches(data, 5, bigram)
    return ctx, OldStale(data, 5, VOCAB), data


def twin(ctx: TrainContext) -> TrainContext:
    """The same run's context for the reference: equal weights and generator states."""
    model = copy.deepcopy(ctx.model)
    model.dropout_generator = torch.Generator().manual_seed(0)
    model.dropout_generator.set_state(ctx.model.dropout_generator.get_state())
    gen = torch.Generator()
    gen.set_state(ctx.generator.get_state())
    return TrainContext(params=ctx.params, model=model, bigram=ctx.bigram,
                        sampler=ctx.sampler, generator=gen,
                        steps_per_epoch=ctx.steps_per_epoch, plans=ctx.plans,
                        stale=StaleModel(ctx.stale.data, 5, VOCAB, ctx.stale.cache_mib))


def close(new: Tensor, old: Tensor, what: str) -> None:
    torch.testing.assert_close(new, old, rtol=2e-4, atol=2e-6, msg=lambda m: f"{what}: {m}")


def make(name: str, lam: float | None = 0.2, **params):
    return METHODS.get(name)(METHODS.config(name)(**params), lam if name != "baseline" else None)


CASES = {
    "baseline": make("baseline"),
    "reverse_kd": make("reverse_kd"),
    "imm_serialized every epoch": make("imm_serialized", refresh_every="size"),
    "imm_serialized every 3 steps": make("imm_serialized", refresh_every=3),
    "imm_sampled paper schedule": make("imm_sampled", k=10, k_every=5),
    "imm_sampled fresh single sample": make("imm_sampled", k=10, k_every=3,
                                            single_sample="sampled"),
    "imm_sampled k=20 every batch": make("imm_sampled", k=20),
    "imm_sampled k=null": make("imm_sampled", k=None),
}


def run_both(method, ctx: TrainContext, old_stale: OldStale, data: Tensor, epochs: int = 2,
             joint: bool = False, compare: bool = True, fused: bool = True):
    """Steps of both codes from the same weights, generator states and carried states;
    each step's losses and raw gradients are compared, then both models take the same
    (reference) update so that every step starts equal."""
    ref = twin(ctx)
    params = [p for p in ctx.model.parameters()]
    ref_params = [p for p in ref.model.parameters()]
    step = 0
    for _ in range(epochs):
        state = ctx.model.zero_state(3)
        ref_state = ref.model.zero_state(3)
        ctx.stale.reset_state()
        old_stale.reset_state()
        for plan, (inputs, targets) in zip(ctx.plans, chunks(data, 5), strict=True):
            views = LmViews(ctx, inputs, targets, state, plan)
            new = objectives.step_gradients(method, views, step, True, params, joint=joint,
                                            fused=fused)
            old_views = OldViews(ref, old_stale, inputs, targets, ref_state)
            old = old_gradients(method, old_views, step, ref_params)
            if compare:
                close(new.primary_value, old[0], f"step {step} primary loss")
                if old[1] is not None:
                    close(new.term_value, old[1], f"step {step} term")
                new_grads = new.primary if new.term is None or joint else new.primary
                for i, (a, b) in enumerate(zip(new_grads, old[2], strict=True)):
                    close(a, b, f"step {step} primary grad {i}")
                if old[3] is not None:
                    for i, (a, b) in enumerate(zip(new.term, old[3], strict=True)):
                        close(a, b, f"step {step} term grad {i}")
            update = old_clipped(old[2], ref_params, 5.0)
            if old[3] is not None:
                update = [g + e for g, e in zip(update, old_clipped(old[3], ref_params, 5.0),
                                                strict=True)]
            with torch.no_grad():
                for p, q, g in zip(params, ref_params, update, strict=True):
                    p.sub_(g)
                    q.sub_(g)
            state, ref_state = views.state_out, old_views.state_out
            step += 1
    return step


# ==== tests =================================================================================
# The longest cases (20-70 s each on 2 loaded cores) run in .ci/run's `-m heavy` step, not in
# the default suite, which keeps every method's cheaper case.
HEAVY = {"imm_sampled k=20 every batch", "imm_sampled fresh single sample",
         "imm_serialized every 3 steps", "reverse_kd"}


def cases(names: list[str]) -> list:
    return [pytest.param(n, marks=pytest.mark.heavy) if n in HEAVY else n for n in names]


@pytest.mark.parametrize("case", cases(list(CASES)))
def test_step_gradients_equal_the_previous_code(case):
    ctx, old_stale, data = contexts(tiny_stream())
    steps = run_both(CASES[case], ctx, old_stale, data)
    assert steps == 2 * ctx.steps_per_epoch


@pytest.mark.parametrize("case", cases(["imm_serialized every 3 steps",
                                        "imm_sampled k=20 every batch",
                                        "imm_sampled fresh single sample"]))
def test_views_contract_path_equals_the_previous_code(case):
    """Without the fused paths (method.loss_parts on LmViews: induced() through the
    deduplicated mixture, stale_correction() from the kept ratios) the same numbers."""
    ctx, old_stale, data = contexts(tiny_stream())
    run_both(CASES[case], ctx, old_stale, data, fused=False)


@pytest.mark.parametrize("case", ["reverse_kd", "imm_serialized every epoch"])
def test_fused_paths_hold_with_tied_weights(case):
    ctx, old_stale, data = contexts(tiny_stream(), tie=True)
    run_both(CASES[case], ctx, old_stale, data, epochs=1)


def test_serialized_without_the_cache_equals_the_previous_code():
    ctx, old_stale, data = contexts(tiny_stream(), refresh_every_cache=0.0)
    assert not ctx.stale.cache_fits(ctx.model)
    run_both(CASES["imm_serialized every 3 steps"], ctx, old_stale, data)


def test_joint_clip_option_is_the_clip_of_the_summed_gradient():
    """imm_joint_clip (an approximation) returns primary + term gradients as one."""
    for case in ("reverse_kd", "imm_serialized every epoch", "imm_sampled paper schedule"):
        ctx, _, data = contexts(tiny_stream())
        params = list(ctx.model.parameters())
        ref = twin(ctx)
        state = ctx.model.zero_state(3)
        inputs, targets = next(iter(chunks(data, 5)))
        joint = objectives.step_gradients(CASES[case], LmViews(ctx, inputs, targets, state,
                                                               ctx.plans[0]),
                                          0, True, params, joint=True)
        apart = objectives.step_gradients(CASES[case], LmViews(ref, inputs, targets, state,
                                                               ctx.plans[0]),
                                          0, True, list(ref.model.parameters()))
        assert joint.term is None
        for a, b, c in zip(joint.primary, apart.primary, apart.term, strict=True):
            close(a, b + c, case)


def test_clip_equals_the_float64_clip():
    gen = torch.Generator().manual_seed(0)
    params = [torch.zeros(3000, 40), torch.zeros(40), torch.zeros(7, 3)]  # several pieces
    for scale in (1e-3, 0.1, 10.0, 1e3):  # below and above the limit
        grads = [torch.randn(p.shape, generator=gen) * scale for p in params]
        old = old_clipped(grads, params, 5.0)
        new = clipped([g.clone() for g in grads], 5.0)  # in place
        for a, b in zip(new, old, strict=True):
            assert torch.equal(a, b), scale  # the same float32 scale
    # A joint norm over all tensors, not per tensor.
    total = torch.sqrt(sum((g.double() ** 2).sum() for g in clipped(grads, 5.0)))
    assert float(total) == pytest.approx(5.0, rel=1e-6)


def test_stale_cache_changes_no_bit():
    """Q_stale kept from the refresh pass (predictions, or top-layer outputs) equals the
    stale LSTM's per-step forward bit for bit, with refreshes at and between epoch
    starts, whatever the budget keeps."""
    stream = tiny_stream()
    targets = []
    per_chunk = 3 * 5 * VOCAB * 4 / 2**20  # MiB of one chunk's predictions
    hidden = 3 * (batchify(stream, 3).shape[1] - 1) * 6 * 4 / 2**20
    for mib in (8192.0, hidden + 4.5 * per_chunk, hidden, 0.0):
        ctx, _, data = contexts(stream, refresh_every_cache=mib)
        out, step, kept = [], 0, []
        for _ in range(3):
            state = ctx.model.zero_state(3)
            ctx.stale.reset_state()
            for plan, (inputs, tgt) in zip(ctx.plans, chunks(data, 5), strict=True):
                views = LmViews(ctx, inputs, tgt, state, plan)
                refresh = step % 4 == 0 if step < 2 * ctx.steps_per_epoch else False
                out.append(views.stale_target(refresh=refresh).clone())
                kept.append(len(ctx.stale.kept))
                views.main()
                state = views.state_out
                with torch.no_grad():  # move the weights so every refresh differs
                    for p in ctx.model.parameters():
                        p.mul_(0.99)
                step += 1
        targets.append(out)
        assert (ctx.stale.hidden is not None) == (mib >= hidden)
        assert max(kept) == {8192.0: ctx.steps_per_epoch, hidden: 0, 0.0: 0}.get(mib, 4)
    assert all(torch.equal(a, b) for other in targets[1:]
               for a, b in zip(targets[0], other, strict=True))


def test_each_distinct_window_runs_once(monkeypatch):
    """A k-step runs the distinct sampled windows once each (fewer than D x k), in groups
    of whole words of at most chunk + k - 1 windows."""
    ctx, _, data = contexts(tiny_stream())
    runs: list[int] = []
    original = windows.window_predictions

    def counting(model, tokens):
        runs.append(tokens.shape[0])
        return original(model, tokens)

    monkeypatch.setattr(windows, "window_predictions", counting)
    inputs, targets = next(iter(chunks(data, 5)))
    views = LmViews(ctx, inputs, targets, ctx.model.zero_state(3), ctx.plans[0])
    gen_state = ctx.generator.get_state()
    objectives.sampled_term(views, 20, 0.2, 1.0, list(ctx.model.parameters()))
    ctx.generator.set_state(gen_state)
    found, _ = views.sample(20)
    d = ctx.plans[0].size
    assert sum(runs) == len(found) < d * 20
    assert max(runs) <= max(d, 20) + 20 - 1
    groups = windows.word_groups(found.per_word, 7)
    assert [g[0] for g in groups[1:]] == [g[1] for g in groups[:-1]]
    assert all(hi - lo < 7 + 20 for _, _, lo, hi in groups)
    assert int(found.weight.sum() * 20) == d * 20  # every draw counted once


def test_dedup_mixture_reuses_the_last_chunk(monkeypatch):
    """The lazily differentiated mixture (LmViews.induced) runs each chunk once in the
    forward and recomputes all but the last chunk in the backward."""
    ctx, _, data = contexts(tiny_stream())
    runs: list[int] = []
    original = windows.window_predictions

    def counting(model, tokens):
        runs.append(tokens.shape[0])
        return original(model, tokens)

    monkeypatch.setattr(windows, "window_predictions", counting)
    found = windows.sample_windows(ctx.sampler.host_multiset, torch.arange(VOCAB), 8,
                                   ctx.generator)
    dev = windows.DeviceWindows(found, ctx.sampler.padded, ctx.sampler.window)
    params = list(ctx.model.parameters())
    mixture = windows.DedupMixture.apply(dev, VOCAB, 10, ctx.model, *params)
    forward = sum(runs)
    torch.autograd.grad(mixture.sum(), params)
    last = len(found) - 10 * ((len(found) - 1) // 10)
    assert forward == len(found) and sum(runs) - forward == len(found) - last


def test_device_rows_equal_host_rows():
    """Rows formed on the device (dense cache and sparse entries) are KneserNeyBigram.rows
    bit for bit, and the sparse form gamma p_lower + S adds up to them."""
    zipf = 1.0 / torch.arange(1, 601, dtype=torch.float64)
    stream = torch.multinomial(zipf, 60000, replacement=True,
                               generator=torch.Generator().manual_seed(0))
    bigram = KneserNeyBigram.from_stream(stream, 600)
    words = torch.unique(stream[:2000])
    plan = RowPlan.build(bigram, words, torch.device("cpu"))
    assert len(plan.cached_at) > 0 and len(plan.uncached_at) > 0
    kn = DeviceBigram(bigram, torch.device("cpu"))
    assert torch.equal(kn.rows(plan), bigram.rows(words))
    row, col, value, _ = kn.entries(plan)
    dense = kn.gamma[words, None] * kn.lower[None, :]
    dense[row, col] += value
    torch.testing.assert_close(dense, bigram.rows(words))


def test_no_host_reads_in_the_step(monkeypatch):
    """With the batch plans built, a step of the baseline, reverse-KD, serialized IMM
    (between refreshes) and single-sample IMM reads no tensor value back to the host
    (on a GPU: no synchronisation). The k-sample step draws its contexts on the host by
    design and is not covered."""
    ctx, _, data = contexts(tiny_stream())
    params = list(ctx.model.parameters())
    batches = list(chunks(data, 5))
    state = ctx.model.zero_state(3)
    # Warm everything that is built once (the device KN parts, the stale snapshot).
    serialized = make("imm_serialized", refresh_every=1000)
    LmViews(ctx, *batches[0], state, ctx.plans[0]).stale_target(refresh=True)
    ctx.kn()

    def refuse(*args, **kwargs):
        raise AssertionError("a tensor value was read back to the host in the step")

    for name in ("__bool__", "__int__", "__float__", "item", "tolist", "cpu", "numpy"):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    monkeypatch.setattr(torch, "unique", refuse)
    with pytest.raises(AssertionError):
        torch.ones(1).item()
    from harness.tasks.ptb_lstm.train import Trainer

    for method, step in ((make("baseline"), 1), (make("reverse_kd"), 1), (serialized, 1),
                         (make("imm_sampled", k=10, k_every=5), 1)):
        trainer = Trainer(ctx, method, data, data[:, :10])
        trainer.state.step = step
        trainer.step(LmViews(ctx, *batches[1], state, ctx.plans[1]))
    assert params[0].grad is None


def test_word_fraction_option_keeps_a_reweighted_subset(monkeypatch):
    """imm_word_fraction (an approximation) runs the k-sample term for ceil(f D) of the
    batch's words, weighted D / m times their full weight (the term's expectation over
    the random subset is the full term); 1.0 keeps every word at its weight."""
    captured = {}

    def capture(model, params, found, dev, targets, scale, chunk):
        captured.update(found=found, targets=targets.clone(), scale=scale.clone())
        return scale.sum(), [torch.zeros_like(p) for p in params]

    monkeypatch.setattr(objectives, "grouped_term_gradients", capture)
    ctx, _, data = contexts(tiny_stream())
    inputs, targets = next(iter(chunks(data, 5)))
    views = LmViews(ctx, inputs, targets, ctx.model.zero_state(3), ctx.plans[0])
    plan, params = ctx.plans[0], list(ctx.model.parameters())
    full = plan.counts * (0.2 / 3)
    objectives.sampled_term(views, 5, 0.2, 1.0, params)
    assert torch.equal(captured["scale"], full) and len(captured["found"].per_word) == plan.size
    objectives.sampled_term(views, 5, 0.2, 0.5, params)
    m = -(-plan.size // 2)
    assert len(captured["scale"]) == m == len(captured["found"].per_word)
    # The kept words (found by their KN rows, all distinct here) and their weights.
    rows = views.kn_rows()
    picked = [int((rows == r).all(1).nonzero()[0]) for r in captured["targets"]]
    assert len(set(picked)) == m
    torch.testing.assert_close(captured["scale"], full[picked] * plan.size / m)
