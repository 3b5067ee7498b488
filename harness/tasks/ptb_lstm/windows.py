"""The sampled extended contexts of a k-sample IMM step, each distinct window run once.

Per previous word d of a batch, k training positions are drawn with replacement from the
multiset of positions whose previous word is d; each is a window of ``imm_window`` tokens
run from a zero state without dropout, and Q_j is the softmax of its last step. A word
with few positions draws the same position again and again (at 30k training tokens about
2,000 of a batch's ~3,500 draws are distinct; at 200k about 2,900; on all of PTB 3,300),
and a position belongs to one previous word only, so ``sample_windows`` keeps each
distinct (word, position) once with its multiplicity: Qbar_d = sum_u (c_u / k) Q_u.

Two ways to differentiate -sum_y P_d(y) log Qbar_d(y) with memory flat in k:

- ``grouped_term_gradients`` (what the trainer runs): the term is a sum over words and a
  word's mixture needs only its own windows, so the words are taken in groups of at most
  ``chunk`` windows; each group is run once with its graph, its part of the term formed
  and back-propagated at once (crosstalk surrogate, paper App. C.2). No window is run
  twice, and at most one group's graph is alive.
- ``DedupMixture`` (``LmViews.induced``, the Views contract's lazily differentiated
  mixture): the forward runs the windows in chunks without a graph except the last
  chunk, whose graph is kept; the backward uses that graph and recomputes the others, one
  chunk at a time.

Sampling and deduplication run on the host (a few thousand integers), so that on a GPU
no data-dependent size is read back from the device; only the positions are copied over.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from harness.methods.induced import EPS
from harness.tasks.multiset import KeyedMultiset
from harness.tasks.ptb_lstm.model import LstmLm
from harness.tasks.ptb_lstm.plan import to_device
from harness.tasks.ptb_lstm.token_lstm import stack_outputs


@dataclass(frozen=True)
class WindowSet:
    """Distinct sampled positions, grouped by word (host tensors)."""

    positions: Tensor   # (U,) target positions t' (window stream[t' - W : t'])
    owner: Tensor       # (U,) row of the position's word among the sampled words
    weight: Tensor      # (U,) float32 multiplicity / k
    per_word: Tensor    # (D,) distinct windows of each word (sums to U)

    def __len__(self) -> int:
        return len(self.positions)


def sample_windows(multiset: KeyedMultiset, words: Tensor, k: int,
                   generator: torch.Generator) -> WindowSet:
    """k draws per word (``KeyedMultiset.sample``, the same draws as before), each
    distinct (word, position) kept once with its count."""
    drawn = multiset.sample(words, k, generator)                     # (D, k)
    ordered = drawn.sort(1).values
    new = torch.ones_like(ordered, dtype=torch.bool)
    new[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    flat = new.reshape(-1)
    counts = torch.bincount(torch.cumsum(flat, 0) - 1)
    owner = torch.arange(len(words)).repeat_interleave(k)[flat]
    return WindowSet(positions=ordered.reshape(-1)[flat], owner=owner,
                     weight=counts.to(torch.float32) / k, per_word=new.sum(1))


def word_groups(per_word: Tensor, chunk: int) -> list[tuple[int, int, int, int]]:
    """Consecutive words in groups of about ``chunk`` windows (a group closes at the word
    whose windows reach a multiple of ``chunk``, so it holds fewer than chunk + k):
    (first word, end word, first window, end window) per group."""
    end = torch.cumsum(per_word, 0)
    group = (end - 1) // chunk
    _, sizes = torch.unique_consecutive(group, return_counts=True)
    word_end = torch.cumsum(sizes, 0).tolist()
    win_end = end[torch.tensor(word_end) - 1].tolist()
    word_lo, win_lo = [0, *word_end[:-1]], [0, *win_end[:-1]]
    return list(zip(word_lo, word_end, win_lo, win_end, strict=True))


def window_predictions(model: LstmLm, windows: Tensor) -> Tensor:
    """Softmax of the last step of each window, run from a zero state without dropout, as
    one batched forward (``token_lstm.stack_outputs``): (N, V), differentiable."""
    return torch.softmax(model.decoder(stack_outputs(model, windows, last_only=True)), -1)


class DeviceWindows:
    """A WindowSet's arrays on the device, and the token windows of any slice of it."""

    def __init__(self, windows: WindowSet, padded: Tensor, width: int) -> None:
        device = padded.device
        self.positions = to_device(windows.positions, device)
        self.owner = to_device(windows.owner, device)
        self.weight = to_device(windows.weight, device)
        self.padded = padded
        self.steps = torch.arange(0, width, device=device)

    def tokens(self, lo: int, hi: int) -> Tensor:
        """(hi - lo, W) windows stream[t' - W : t'] of windows lo..hi."""
        return self.padded[self.positions[lo:hi, None] + self.steps]


def grouped_term_gradients(model: LstmLm, params: list[Tensor], windows: WindowSet,
                           dev: DeviceWindows, targets: Tensor, scale: Tensor, chunk: int
                           ) -> tuple[Tensor, list[Tensor]]:
    """sum_d scale_d * (-sum_y targets_d(y) log Qbar_d(y)) and its gradient over
    ``params``, one group of words at a time (see the module docstring)."""
    total = targets.new_zeros(())
    grads = [torch.zeros_like(p) for p in params]
    for w_lo, w_hi, u_lo, u_hi in word_groups(windows.per_word, chunk):
        probs = window_predictions(model, dev.tokens(u_lo, u_hi))
        owner = dev.owner[u_lo:u_hi] - w_lo
        mix = probs.new_zeros(w_hi - w_lo, probs.shape[-1]).index_add(
            0, owner, probs * dev.weight[u_lo:u_hi, None])
        target, weight = targets[w_lo:w_hi], scale[w_lo:w_hi]
        with torch.no_grad():
            safe = mix.detach().clamp_min(EPS)
            total += (weight * -(target * safe.log()).sum(-1)).sum()
            ratio = target / safe * weight[:, None]
        surrogate = -(ratio * mix).sum()
        parts = torch.autograd.grad(surrogate, params, allow_unused=True)
        for g, part in zip(grads, parts, strict=True):
            if part is not None:
                g += part
    return total, grads


class DedupMixture(torch.autograd.Function):
    """(D, V) mixtures sum_u weight_u Q_u over the rows ``owner``, differentiable over the
    model's parameters: forward without a graph except the last chunk (kept), backward
    from that graph and a recompute of the other chunks, one at a time."""

    @staticmethod
    def forward(ctx, dev: DeviceWindows, rows: int, chunk: int, model: LstmLm,
                *params: Tensor) -> Tensor:
        ctx.dev, ctx.chunk, ctx.model, ctx.params = dev, chunk, model, params
        n = len(dev.positions)
        ctx.bounds = [(lo, min(lo + chunk, n)) for lo in range(0, n, chunk)]
        total = None
        for i, (lo, hi) in enumerate(ctx.bounds):
            last = i == len(ctx.bounds) - 1
            with torch.enable_grad() if last else torch.no_grad():
                probs = window_predictions(model, dev.tokens(lo, hi))
            if total is None:
                total = probs.new_zeros(rows, probs.shape[-1])
            total.index_add_(0, dev.owner[lo:hi], probs.detach() * dev.weight[lo:hi, None])
            if last:
                ctx.last = probs
        return total

    @staticmethod
    def backward(ctx, grad: Tensor):
        dev = ctx.dev
        sums: list[Tensor | None] = [None] * len(ctx.params)
        for i, (lo, hi) in reversed(list(enumerate(ctx.bounds))):
            if i == len(ctx.bounds) - 1 and ctx.last is not None:
                probs, ctx.last = ctx.last, None  # used once; a second backward recomputes
            else:
                with torch.enable_grad():
                    probs = window_predictions(ctx.model, dev.tokens(lo, hi))
            upstream = grad[dev.owner[lo:hi]] * dev.weight[lo:hi, None]
            parts = torch.autograd.grad(probs, ctx.params, upstream, allow_unused=True)
            sums = [p if s is None else s if p is None else s + p
                    for s, p in zip(sums, parts, strict=True)]
        return (None, None, None, None, *sums)
