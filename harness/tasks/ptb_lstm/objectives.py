"""The two gradients of a training step (the primary's and the regulariser's, clipped
apart by the trainer, App. D.2.2), with the work each method's structure makes
unnecessary left out. Every path equals autograd on ``method.loss_parts`` within float
rounding (tests/test_ptb_exact.py keeps the previous code as the reference).

- generic: ``method.loss_parts`` and one ``autograd.grad`` per part (any method).
- reverse-KD: its term shares the primary's forward, and the KN target is a sparse row
  plus a rank-one backoff with rows summing to 1, so
  lambda CE(P, Q) = lambda primary + lambda/B sum_i (z_i[y_i] - P_i . z_i):
  the term's gradient is lambda x the primary's plus the gradient of a part linear in
  the logits, which needs only the observed words' decoder rows, the sparse entries of
  the batch's distinct words and one backoff vector (no (items, V) target and no full
  decoder products in its backward).
- serialized IMM: the target comes from the per-word ratios kept by the refresh; both
  gradients are formed at the logits in closed form, softmax(z) computed once for both:
  d/dz [-sum_y T log softmax(z)] = (sum_y T) softmax(z) - T (T = e_y for the primary).
- sampled IMM: per word rather than per item (a word's items share its KN row and
  induced mixture, weight = its count); the k-sample term over distinct windows, one
  group of words at a time, each window run once (harness.tasks.ptb_lstm.windows); the
  single-sample ("own") term in closed form at its logits.

Options that change the numbers (approximations, never the default): ``imm_joint_clip``
returns the sum of the two gradients for one clip; ``imm_word_fraction`` < 1 keeps a
random fraction of a batch's distinct previous words in a k-sample term (reweighted so
that the term's expectation is unchanged).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from harness.methods.base import Method
from harness.tasks.ptb_lstm.plan import to_device
from harness.tasks.ptb_lstm.views import LmViews
from harness.tasks.ptb_lstm.windows import grouped_term_gradients


@dataclass
class StepGradients:
    """A step's losses (detached scalars) and gradients over the trainer's params.
    ``term`` is None without a regulariser, or when ``primary`` holds the sum (joint)."""

    primary_value: Tensor
    term_value: Tensor | None
    primary: list[Tensor]
    term: list[Tensor] | None


def _grad(output: Tensor, params: list[Tensor], upstream: Tensor | None = None,
          retain: bool = False) -> list[Tensor]:
    parts = torch.autograd.grad(output, params, upstream, retain_graph=retain,
                                allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(parts, params, strict=True)]


def _result(primary: Tensor, term: Tensor, gp: list[Tensor], gt: list[Tensor], joint: bool
            ) -> StepGradients:
    if joint:
        return StepGradients(primary.detach(), term.detach(),
                             [a + b for a, b in zip(gp, gt, strict=True)], None)
    return StepGradients(primary.detach(), term.detach(), gp, gt)


def generic(primary: Tensor, term: Tensor | None, params: list[Tensor], joint: bool
            ) -> StepGradients:
    """autograd on each part (on their sum with a joint clip)."""
    if term is None:
        return StepGradients(primary.detach(), None, _grad(primary, params), None)
    if joint:
        return StepGradients(primary.detach(), term.detach(), _grad(primary + term, params),
                             None)
    gp = _grad(primary, params, retain=True)
    return StepGradients(primary.detach(), term.detach(), gp, _grad(term, params))


def _soft_ce(logits: Tensor, target: Tensor, scale: float
             ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """scale * sum_items -sum_y target log softmax(logits), its gradient at the logits
    (scale * ((sum_y target) softmax - target)), softmax(logits) and log softmax(logits);
    ``target`` is overwritten by the gradient."""
    with torch.no_grad():
        log_probs = torch.log_softmax(logits, -1)
        probs = log_probs.exp()
        mass = target.sum(-1, keepdim=True)
        value = -scale * torch.linalg.vecdot(target, log_probs).sum()
        grad = target.addcmul_(probs, mass, value=-1.0).mul_(-scale)
    return value, grad, probs, log_probs


# ---- reverse-KD ---------------------------------------------------------------------------
def kn_linear_part(views: LmViews, scale: float) -> Tensor:
    """scale * sum_i (z_i[y_i] - P_i . z_i) over the main forward's logits z, formed from
    the top-layer outputs without the (items, V) logits: P_d = gamma_d p_lower + S_d.
    Rows are gathered with index_select (its backward is an index_add: no sort, no
    device read-back on a GPU)."""
    kn, plan = views.ctx.kn(), views.plan
    assert kn is not None and plan.rows is not None
    decoder = views.ctx.model.decoder
    weight, bias = decoder.weight, decoder.bias
    hidden = views.main()[0].reshape(-1, weight.shape[1])
    observed = views.targets.reshape(-1)
    seen = (hidden * weight.index_select(0, observed)).sum() + bias.index_select(
        0, observed).sum()
    sums = hidden.new_zeros(plan.size, hidden.shape[1]).index_add(
        0, plan.index.reshape(-1), hidden)                       # sum of h over word d
    row, col, value, _ = kn.entries(plan.rows)
    sparse_w = hidden.new_zeros(plan.size, hidden.shape[1]).index_add(
        0, row, weight.index_select(0, col) * value[:, None])    # S_d W
    sparse_b = bias.new_zeros(plan.size).index_add(0, row, bias.index_select(0, col) * value)
    gamma, n = kn.gamma[plan.words], plan.counts
    backoff = gamma * (sums @ (kn.lower @ weight) + n * (kn.lower @ bias))
    expected = backoff.sum() + (sparse_w * sums).sum() + (n * sparse_b).sum()
    return scale * (seen - expected)


def reverse_kd(method: Method, views: LmViews, step: int, params: list[Tensor], joint: bool
               ) -> StepGradients:
    lam = method.lam
    primary = views.reduce(views.primary_loss(views.targets))
    rest = kn_linear_part(views, lam / views.targets.shape[0])
    term = lam * primary.detach() + rest.detach()
    if joint:
        return StepGradients(primary.detach(), term, _grad((1.0 + lam) * primary + rest,
                                                           params), None)
    gp = _grad(primary, params, retain=True)
    gr = _grad(rest, params)
    return StepGradients(primary.detach(), term, gp,
                         [lam * a + b for a, b in zip(gp, gr, strict=True)])


# ---- serialized IMM -----------------------------------------------------------------------
def imm_serialized(method: Method, views: LmViews, step: int, params: list[Tensor],
                   joint: bool) -> StepGradients:
    every = method.params.refresh_every
    every = views.refresh_period if every == "size" else every
    target = views.stale_target(refresh=step % every == 0)
    logits = views.main()[1]
    rows = logits.shape[0]
    term, g_term, probs, log_probs = _soft_ce(logits, target, method.lam / rows)
    with torch.no_grad():
        y = views.targets[..., None]
        primary = -log_probs.gather(-1, y).sum() / rows
        g_primary = probs.div_(rows).scatter_add_(-1, y, probs.new_full(y.shape, -1.0 / rows))
    if joint:
        return StepGradients(primary, term, _grad(logits, params, g_primary.add_(g_term)), None)
    gp = _grad(logits, params, g_primary, retain=True)
    return StepGradients(primary, term, gp, _grad(logits, params, g_term))


# ---- sampled IMM --------------------------------------------------------------------------
def own_term(views: LmViews, scale: float, params: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
    """CE(P, Q(.|the items' own contexts, no dropout)) in closed form at its logits."""
    logits = views.imm_logits()
    value, grad, _, _ = _soft_ce(logits, views.kn_rows()[views.plan.index], scale)
    return value, _grad(logits, params, grad)


def sampled_term(views: LmViews, k: int, lam: float, fraction: float,
                 params: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
    """lambda/B sum_items CE(P, Qbar_k) = sum_d (lambda n_d / B) CE(P_d, Qbar_d)."""
    plan, device = views.plan, views.inputs.device
    scale = plan.counts * (lam / views.targets.shape[0])
    rows = views.kn_rows()
    words = plan.host_words
    if fraction < 1.0:
        keep = math.ceil(fraction * plan.size)
        chosen = torch.randperm(plan.size, generator=views.ctx.sampling_generator)[:keep]
        chosen = chosen.sort().values
        words, at = words[chosen], to_device(chosen, device)
        scale, rows = scale[at] * (plan.size / keep), rows[at]
    found, dev = views.sample(k, words)
    return grouped_term_gradients(views.ctx.model, params, found, dev, rows, scale,
                                  max(plan.size, k))


def imm_sampled(method: Method, views: LmViews, step: int, params: list[Tensor], joint: bool
                ) -> StepGradients:
    primary = views.reduce(views.primary_loss(views.targets))
    gp = _grad(primary, params)
    lam, settings = method.lam, method.params
    k = settings.k
    if k is not None and settings.k_every > 1 and step % settings.k_every:
        if settings.single_sample == "own":
            term, gt = own_term(views, lam / views.targets.shape[0], params)
            return _result(primary, term, gp, gt, joint)
        k = 1
    k = k or views.ctx.params.imm_k
    term, gt = sampled_term(views, k, lam, views.ctx.params.imm_word_fraction, params)
    return _result(primary, term, gp, gt, joint)


Fused = Callable[[Method, LmViews, int, list[Tensor], bool], StepGradients]
FUSED: dict[str, Fused] = {"restricted_cross_entropy": reverse_kd,
                           "stale_corrected_cross_entropy": imm_serialized,
                           "induced_cross_entropy": imm_sampled}


def step_gradients(method: Method, views: LmViews, step: int, term_on: bool,
                   params: list[Tensor], joint: bool = False, fused: bool = True
                   ) -> StepGradients:
    """The step's gradients: the fused path of the method's declared ``term_form`` when
    there is one, else autograd on its loss parts. Before the
    fine-tuning switch (``term_on`` false) every method trains on the primary alone."""
    if not term_on:
        return generic(views.reduce(views.primary_loss(views.targets)), None, params, joint)
    form = method.term_form
    # At lambda 0 the term vanishes: autograd on the parts gives the baseline's bits (the
    # contract's lambda-0 check), which a closed-form primary gradient would not.
    path = FUSED.get(form) if fused and form is not None and method.lam != 0 else None
    if path is not None and (form != "restricted_cross_entropy" or views.ctx.kn() is not None):
        return path(method, views, step, params, joint)
    primary, term = method.loss_parts(views, step)
    return generic(primary, term, params, joint)
