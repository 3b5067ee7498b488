"""The GLUE BERT task (paper Sec. 7.2, App. D.2, Table 2): fine-tuning a BERT-style
encoder on GLUE tasks with the masked-language-model loss re-introduced and the
method's regulariser on the MLM predictions.

Methods (the names are the registry's):

- ``baseline``: the task loss only (classification head), as BERT is usually fine-tuned.
- ``mlm``: the task loss + the MLM loss on the same training sentences (Table 2's
  "+MLM"); no regulariser. It is a method of its own (``harness.methods.mlm``) because
  "baseline" keeps its meaning everywhere (the primary loss only, here the task loss);
  on tasks without an auxiliary MLM branch ``mlm`` skips with a reason.
- ``imm_sampled``, ``imm_serialized``, ``reverse_kd``, ``noising``: task + MLM + their
  term on the MLM branch ("+MLM+IMM" is ``imm_sampled`` with k = 5), see ``views``.
- ``interpolation`` is skipped with a reason: it changes only the MLM predictions at
  evaluation, which the GLUE metrics (read from the classification head) never use, so
  its training and numbers would be exactly those of ``mlm`` at full cost.

When the checkpoint ships no MLM head and the spec sets ``mlm_head``, the head is first
adapted on general text (``head``: once per checkpoint, corpus and settings, cached and
shared by every method and seed) and installed in every replicate that trains the MLM
branch; every cell records its held-out MLM loss as ``mlm_head_loss``.

A cell fine-tunes once per GLUE task in ``params.tasks`` and per replicate (``runs``),
each time from the pretrained checkpoint with freshly, seeded heads, on the cell's
training subset (the same for every method and replicate), and evaluates on the dev set
(``request.split == "test"``; MNLI on its matched and mismatched dev sets, from one
fine-tuning) or on held-out training examples ("validation"). The task head has one output
per class, or one for the regression task STS-B (mean squared error; Pearson and Spearman
correlation). Init and dropout seeds depend on (GLUE task, seed, size, replicate), not on
the method, so cells are paired. Returns ``<task>_<metric>`` per replicate and ``score``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.data.glue import num_labels
from harness.errors import DataError
from harness.methods.base import Method
from harness.tasks.base import CellRequest, Progress, Task, make_generator, stable_seed
from harness.tasks.glue_bert.config import EVAL_SUFFIX, PAPER_METRIC, GlueBertParams
from harness.tasks.glue_bert.corpus import encode, evaluation_splits
from harness.tasks.glue_bert.evaluate import glue_metrics
from harness.tasks.glue_bert.general_text import general_files
from harness.tasks.glue_bert.head import AdaptedHead, adapted_head, check_bar, head_cache, install
from harness.tasks.glue_bert.induced import StaleModel, context_multiset
from harness.tasks.glue_bert.model import LoadedBert, load_bert, token_id
from harness.tasks.glue_bert.restricted import wordpiece_bigram
from harness.tasks.glue_bert.train import (
    Generators,
    Trainer,
    steps_per_epoch,
    trains_mlm,
    warmed_up_head,
)
from harness.tasks.glue_bert.views import RunContext

INTERPOLATION_SKIP = (
    "interpolation only changes the MLM predictions at evaluation, and the GLUE metrics "
    "read the classification head: it would train and score exactly as mlm"
)


class GlueBertTask(Task):
    """BERT fine-tuned on GLUE tasks; MLM re-introduced; regularisers on the MLM branch."""

    name = "glue_bert"
    params: GlueBertParams
    supplies = frozenset({"restricted", "induced", "stale_correction", "stale_prediction",
                          "noising", "auxiliary_loss"})
    declines = {"mixed_prediction": INTERPOLATION_SKIP}

    def __init__(self, params: GlueBertParams, data_dir: str | None = None) -> None:
        super().__init__(params, data_dir)

    # ---- pieces --------------------------------------------------------------------
    def load_model(self, seed_parts: tuple, labels: int = 2) -> LoadedBert:
        """The pretrained checkpoint with its fresh heads (``labels`` task outputs: the
        classes, or 1 for regression) initialised from the seed."""
        p = self.params
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stable_seed("glue_bert-init", *seed_parts))
            loaded = load_bert(p.model, num_labels=labels, device=self.device,
                               attn_implementation=p.attn_implementation)
        loaded.model.amp_dtype = torch.bfloat16 if p.precision == "bf16" else None
        loaded.model.pooling = p.pooling
        if p.mask_token is not None:
            loaded.model.mask_token_id = token_id(loaded.tokenizer, p.mask_token)
        return loaded

    def context(self, loaded: LoadedBert, train, method: Method, seed_parts: tuple
                ) -> RunContext:
        p, dev = self.params, self.device
        vocab = int(loaded.model.config.vocab_size)
        return RunContext(
            params=p, model=loaded.model,
            bigram=wordpiece_bigram(loaded.tokenizer, vocab, p.bigram_corpus, p.tasks,
                                    self.data_dir),
            train=train, contexts=context_multiset(train, vocab),
            stale=StaleModel(train, vocab, p.causal_mode, p.stale_positions,
                             make_generator(dev, "glue_bert-stale", *seed_parts)),
            generator=make_generator(dev, "glue_bert-method", method.name, *seed_parts),
            positions_generator=make_generator(dev, "glue_bert-positions", *seed_parts),
            steps_per_epoch=steps_per_epoch(len(train), p.batch_size),
        )

    def adapted_head(self) -> AdaptedHead | None:
        """The MLM head adapted on general text (``params.mlm_head``; cached, computed once
        across processes), or None when the spec asks for none or the checkpoint ships a
        head of its own."""
        p = self.params
        if p.mlm_head is None:
            return None
        loaded = self.load_model(("mlm-head",))
        if not loaded.fresh_mlm_head:
            return None
        loaded.model.amp_dtype = None  # the head is adapted in float32 whatever `precision`
        root = None if self.data_dir is None else Path(self.data_dir).expanduser()
        files = general_files(p.mlm_head.corpus, root)
        head, _ = adapted_head(loaded.model, loaded.tokenizer, loaded.checkpoint,
                               {"train": files["train"], "valid": files["valid"]},
                               p.mlm_head, p.mlm_probability, head_cache(p.mlm_head_cache))
        return head

    # ---- a cell --------------------------------------------------------------------
    def run(self, method: Method, request: CellRequest, progress: Progress | None = None
            ) -> dict[str, np.ndarray]:
        p = self.params
        head = self.adapted_head()
        settings = p.mlm_head
        if head is not None and settings is not None and settings.require_target and (
                trains_mlm(method)):
            check_bar(head, settings.target_loss)
        results: dict[str, list[float]] = {}
        total = len(p.tasks) * request.runs
        for t, glue_task in enumerate(p.tasks):
            train_split, evals = evaluation_splits(glue_task, request.size, request.seed,
                                                   request.split, self.data_dir,
                                                   p.valid_fraction)
            if request.split == "test" and len(train_split) < request.size and \
                    p.sizes_beyond_data == "error":
                raise DataError(f"size {request.size} is more than the {len(train_split)} "
                                f"{glue_task} training examples (sizes_beyond_data: all "
                                "trains on all of them)")
            cut = p.eval_examples
            evals = {name: split.select(np.arange(cut)) if cut is not None and cut < len(split)
                     else split for name, split in evals.items()}
            for run in range(request.runs):
                done = t * request.runs + run

                def report(fraction: float, done: int = done) -> None:
                    if progress is not None:
                        progress((done + fraction) / total)

                values = self.fine_tune(glue_task, method, request, run, train_split,
                                        evals, report, head)
                for name, value in values.items():
                    results.setdefault(name, []).append(value)
        per_task = [results[f"{t}_{PAPER_METRIC[t]}"] for t in p.tasks]
        results["score"] = list(np.mean(np.asarray(per_task, dtype=float), axis=0))
        if head is not None:
            results["mlm_head_loss"] = [head.valid_loss] * request.runs
        return {k: np.asarray(v, dtype=float) for k, v in results.items()}

    def prepare(self, glue_task: str, method: Method, seed_parts: tuple, train_split: Any
                ) -> tuple[LoadedBert, RunContext, Generators]:
        """The model, run context and generators of one replicate (before training)."""
        p, dev = self.params, self.device
        loaded = self.load_model(seed_parts, num_labels(glue_task))
        train = encode(loaded.tokenizer, train_split, p.max_length, dev)
        ctx = self.context(loaded, train, method, seed_parts)
        order = torch.Generator().manual_seed(stable_seed("glue_bert-order", *seed_parts))
        gens = Generators(order, make_generator(dev, "glue_bert-masking", *seed_parts))
        return loaded, ctx, gens

    def fine_tune(self, glue_task: str, method: Method, request: CellRequest, run: int,
                  train_split: Any, evals: Any, progress: Progress,
                  head: AdaptedHead | None = None) -> dict[str, float]:
        """Fine-tune one replicate on one GLUE task; its metrics on the evaluation set(s)
        ``evals`` ({GLUE eval split name: examples}, or one GlueSplit: the dev set).
        ``head``: the adapted MLM head, installed when the method trains the MLM branch."""
        p, dev = self.params, self.device
        seed_parts = (glue_task, request.seed, request.size, run)
        loaded, ctx, gens = self.prepare(glue_task, method, seed_parts, train_split)
        if head is not None and trains_mlm(method):
            install(loaded.model, head.state)
        if loaded.fresh_mlm_head and p.head_warmup_steps and trains_mlm(method):
            key = (loaded.checkpoint, seed_parts, request.split,
                   p.model_dump(exclude={"tasks"}))
            warmed_up_head(ctx, repr(key), p.head_warmup_steps, p.head_warmup_lr,
                           make_generator(dev, "glue_bert-head-warmup", *seed_parts))
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            torch.manual_seed(stable_seed("glue_bert-dropout", *seed_parts))
            Trainer(ctx, method, gens, progress).train()
        if not isinstance(evals, dict):
            evals = {"dev": evals}
        out: dict[str, float] = {}
        for name, examples in evals.items():
            evaluation = encode(loaded.tokenizer, examples, p.max_length, dev)
            out.update(glue_metrics(glue_task, loaded.model, evaluation, p.eval_batch_size,
                                    EVAL_SUFFIX[name]))
        return out
