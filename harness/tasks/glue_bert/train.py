"""Fine-tuning of one GLUE task: AdamW with linear warm-up and decay (Devlin et al.), the
task loss plus, for every method but the baseline, the MLM branch and the method's
regulariser on it; the primary gradient and the regulariser's gradient clipped
separately, then added (App. D.2.2), and with ``clip_mlm_separately`` the MLM gradient
clipped apart from the task gradient too (the paper's reason for clipping IMM apart, "two
loss functions that have very different scales", holds for a fresh MLM head: its gradient
norm is ~60x the task's, so a joint clip scales the task gradient down as much).

Per step: a batch of the shuffled training subset; BERT's masking of 15% of its word
positions (80% [MASK], 10% a random token, 10% kept; at least one a sentence); the loss
parts ``method.loss_parts(views)`` = (MLM cross-entropy, lambda x term); the primary loss
task loss + mlm_weight x MLM CE, the regulariser mlm_weight x lambda x term. The task loss
is the cross-entropy of the classification head, or for a regression task (STS-B: one
output) the mean squared error of the predicted score (as ``BertForSequenceClassification``
with one label).

Randomness: the data order, the masking and the regularised positions come from
generators of the replicate (not of the method), so every method sees the same batches
and masks; the method's own draws (sampled contexts, noising) from its generator;
dropout from the global RNG, seeded per replicate by the task. The IMM passes run
without dropout, so they draw nothing from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from harness.methods.base import Method
from harness.tasks.base import Progress
from harness.tasks.glue_bert.causal import choose_positions
from harness.tasks.glue_bert.corpus import Batch
from harness.tasks.glue_bert.views import GlueViews, MlmInputs, RunContext
from harness.tasks.kit import clipped_backward, require_finite

NO_DECAY = ("bias", "LayerNorm.weight", "LayerNorm.bias")


def trains_mlm(method: Method) -> bool:
    """Whether a method trains the MLM branch: it asks for the auxiliary loss (``mlm``) or
    regularises (its term or targets live on the MLM predictions); the others train on
    the task loss alone."""
    return method.regularises or "auxiliary_loss" in method.requires


def task_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy of class ids (long labels), or the mean squared error of a one-output
    regression head against float scores."""
    if labels.is_floating_point():
        return F.mse_loss(logits[:, 0].float(), labels.float())
    return F.cross_entropy(logits, labels)


def optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    decay, plain = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (plain if any(n in name for n in NO_DECAY) else decay).append(param)
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": plain, "weight_decay": 0.0}], lr=lr)


def linear_warmup(opt: torch.optim.Optimizer, warmup: int, total: int
                  ) -> torch.optim.lr_scheduler.LambdaLR:
    """transformers' get_linear_schedule_with_warmup: 0 -> lr over ``warmup`` steps, then
    linearly down to 0 at ``total``."""
    def factor(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))
    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


@dataclass
class Generators:
    """The replicate's method-independent draws: data order (CPU) and MLM masking."""

    order: torch.Generator
    masking: torch.Generator


def mask_tokens(batch: Batch, probability: float, mask_id: int, vocab_size: int,
                generator: torch.Generator) -> MlmInputs:
    """BERT's MLM masking (see the module docstring)."""
    ids = batch.input_ids
    select = choose_positions(batch.candidates, probability, generator)
    u = torch.rand(ids.shape, generator=generator, device=ids.device)
    random_ids = torch.randint(vocab_size, ids.shape, generator=generator, device=ids.device)
    masked = torch.where(select & (u < 0.8), torch.full_like(ids, mask_id), ids)
    masked = torch.where(select & (u >= 0.8) & (u < 0.9), random_ids, masked)
    rows, cols = select.nonzero(as_tuple=True)
    return MlmInputs(masked, select, ids[rows, cols], ids[rows, cols - 1])


def head_own_parameters(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """The MLM head's own parameters: all but the decoder tied to the word embeddings."""
    tied = model.bert.embeddings.word_embeddings.weight
    return {name: q for name, q in model.mlm_head.named_parameters() if q is not tied}


def warm_up_head(ctx: RunContext, steps: int, lr: float, generator: torch.Generator
                 ) -> list[float]:
    """Train only a fresh MLM head (its transform and output bias; the decoder is the word
    embeddings and stays) with the encoder frozen and without dropout: ``steps`` AdamW
    steps of BERT's masking on random batches of the training subset. The head then starts
    fine-tuning from a trained state, as a pretrained checkpoint's head would, instead of
    sending the encoder the gradients of a random head. Returns the losses."""
    model, p = ctx.model, ctx.params
    opt = torch.optim.AdamW(head_own_parameters(model).values(), lr=lr, weight_decay=0.0)
    n, losses = len(ctx.train), []
    was = model.training
    model.eval()
    for _ in range(steps):
        index = torch.randperm(n, generator=generator, device=generator.device)[:p.batch_size]
        batch = ctx.train.rows(index)
        mlm = mask_tokens(batch, p.mlm_probability, model.mask_token_id, ctx.vocab_size,
                          generator)
        with torch.no_grad():
            hidden = model.encode(mlm.input_ids, batch.attention_mask,
                                  batch.token_type_ids).last_hidden_state[mlm.select]
        loss = F.cross_entropy(model.mlm_logits(hidden), mlm.targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.zero_grad(set_to_none=True)
    model.train(was)
    return losses


_WARM_HEADS: dict[str, dict[str, Tensor]] = {}


def warmed_up_head(ctx: RunContext, key: str, steps: int, lr: float,
                   generator: torch.Generator) -> bool:
    """``warm_up_head`` once per ``key`` and process: the warm-up depends only on the
    checkpoint, the training subset and its seed, not on the method, so the other methods'
    cells of a replicate load the same trained head (its own weights; the decoder stays
    tied) instead of repeating it. Returns whether the head came from the cache."""
    own = head_own_parameters(ctx.model)
    cached = _WARM_HEADS.get(key)
    if cached is None:
        warm_up_head(ctx, steps, lr, generator)
        _WARM_HEADS[key] = {name: q.detach().clone() for name, q in own.items()}
        return False
    with torch.no_grad():
        for name, q in own.items():
            q.copy_(cached[name])
    return True


class Trainer:
    def __init__(self, ctx: RunContext, method: Method, generators: Generators,
                 progress: Progress | None = None) -> None:
        self.ctx, self.method, self.gens = ctx, method, generators
        self.p = ctx.params
        self.model = ctx.model
        self.with_mlm = trains_mlm(method)
        self.params = [q for q in self.model.parameters() if q.requires_grad]
        self.opt = optimizer(self.model, self.p.lr, self.p.weight_decay)
        total = self.p.epochs * ctx.steps_per_epoch
        self.sched = linear_warmup(self.opt, int(self.p.warmup * total), total)
        self.progress = progress
        self.step_count = 0
        self.epoch = 0

    def batches(self) -> list[Tensor]:
        n, size = len(self.ctx.train), self.p.batch_size
        order = torch.randperm(n, generator=self.gens.order)
        return [order[i:i + size] for i in range(0, n, size)]

    def views(self, index: Tensor) -> GlueViews:
        batch = self.ctx.train.rows(index)
        mlm = None
        if self.with_mlm:
            mlm = mask_tokens(batch, self.p.mlm_probability, self.model.mask_token_id,
                              self.ctx.vocab_size, self.gens.masking)
        views = GlueViews(self.ctx, batch, mlm)
        views.epoch = self.epoch
        views.progress = self.step_count / (self.p.epochs * self.ctx.steps_per_epoch)
        return views

    def losses(self, views: GlueViews) -> list[tuple[Tensor, float]]:
        """The loss parts of one batch, each with the norm its gradient is clipped to
        before the parts are added: the primary loss (task CE, + MLM CE unless
        ``clip_mlm_separately`` gives the MLM CE its own clip) and the regulariser."""
        p = self.p
        task = task_loss(views.task_logits(), views.batch.labels)
        if not self.with_mlm:
            return [(task, p.clip)]
        mlm, term = self.method.loss_parts(views, self.step_count)
        parts = ([(task, p.clip), (p.mlm_weight * mlm, p.clip)] if p.clip_mlm_separately
                 else [(task + p.mlm_weight * mlm, p.clip)])
        if term is not None:
            parts.append((p.mlm_weight * term, p.imm_clip))
        return parts

    def step(self, index: Tensor) -> None:
        parts = self.losses(self.views(index))
        require_finite([loss for loss, _ in parts], f"loss at step {self.step_count}")
        clipped_backward(self.params, parts)
        self.opt.step()
        self.sched.step()
        self.step_count += 1

    def train(self) -> None:
        self.model.train()
        total = self.p.epochs * self.ctx.steps_per_epoch
        for epoch in range(self.p.epochs):
            self.epoch = epoch
            for index in self.batches():
                self.step(index)
                if self.progress is not None:
                    self.progress(self.step_count / total)


def steps_per_epoch(n: int, batch_size: int) -> int:
    return math.ceil(n / batch_size)
