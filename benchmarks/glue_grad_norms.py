"""Gradient norms of the task loss and of the MLM loss on the first training batches of a
GLUE spec's replicate (default specs/glue.yaml, size = its first, seed 0), with and
without warming up a fresh MLM head: how much a joint clip of (task + MLM) scales the
task gradient down (the diagnosis of specs/glue.yaml in the README).

Usage: python benchmarks/glue_grad_norms.py [--spec specs/glue.yaml] [--tasks mrpc cola]
       [--head-warmup 0] [--batches 3] [--data-dir DIR]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from harness.registry import METHODS
from harness.spec import load_spec
from harness.tasks.base import make_generator
from harness.tasks.glue_bert.corpus import splits
from harness.tasks.glue_bert.task import GlueBertTask
from harness.tasks.glue_bert.train import Trainer, warm_up_head


def norm(grads) -> float:
    return float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default="specs/glue.yaml")
    parser.add_argument("--tasks", nargs="+", default=["mrpc", "cola"])
    parser.add_argument("--head-warmup", type=int, default=0)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    spec = load_spec(args.spec)
    p = spec.task.params.model_copy(update={"head_warmup_steps": args.head_warmup})
    task = GlueBertTask(p, args.data_dir)
    method = METHODS.get("mlm")(METHODS.config("mlm")(), None)
    size, seed = spec.sizes[0], spec.seeds[0]
    for glue_task in args.tasks:
        train, _ = splits(glue_task, size, seed, "test", task.data_dir, p.valid_fraction)
        parts = (glue_task, seed, size, 0)
        _, ctx, gens = task.prepare(glue_task, method, parts, train)
        if args.head_warmup:
            losses = warm_up_head(ctx, args.head_warmup, p.head_warmup_lr,
                                  make_generator(task.device, "glue_bert-head-warmup", *parts))
            print(f"{glue_task}: head warm-up MLM loss {losses[0]:.2f} -> {losses[-1]:.2f}")
        trainer = Trainer(ctx, method, gens)
        for index in trainer.batches()[:args.batches]:
            views = trainer.views(index)
            mlm, _ = method.loss_parts(views, 0)
            task_loss = F.cross_entropy(views.task_logits(), views.batch.labels)
            g_task = torch.autograd.grad(task_loss, trainer.params, retain_graph=True,
                                         allow_unused=True)
            g_mlm = torch.autograd.grad(mlm, trainer.params, allow_unused=True)
            print(f"{glue_task}: task loss {task_loss.item():.3f} |grad| {norm(g_task):.3f}"
                  f"   MLM loss {mlm.item():.3f} |grad| {norm(g_mlm):.3f}")


if __name__ == "__main__":
    main()
