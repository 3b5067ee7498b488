"""Gradient norms of the task loss, the MLM loss and the method's regulariser on the first
training batches of a GLUE spec's replicate (default specs/glue.yaml, size = its first,
seed 0), with or without warming up a fresh MLM head: how much a joint clip of (task +
MLM) scales the task gradient down, and how large each part is before its clip (the
diagnosis of specs/glue.yaml in the README).

Usage: python benchmarks/glue_grad_norms.py [--spec specs/glue.yaml] [--tasks mrpc cola]
       [--method mlm] [--head-warmup N (default: the spec's)] [--batches 3] [--data-dir DIR]
"""

from __future__ import annotations

import argparse

import torch

from harness.runner.execute import first_cell
from harness.spec import load_spec
from harness.tasks.base import make_generator
from harness.tasks.glue_bert.corpus import splits
from harness.tasks.glue_bert.train import Trainer, task_loss, warm_up_head


def norm(grads) -> float:
    return float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default="specs/glue.yaml")
    parser.add_argument("--tasks", nargs="+", default=["mrpc", "cola"])
    parser.add_argument("--method", default="mlm", help="a method of the spec")
    parser.add_argument("--head-warmup", type=int, default=None)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    spec = load_spec(args.spec)
    update = {} if args.head_warmup is None else {"head_warmup_steps": args.head_warmup}
    cell, task, method = first_cell(spec, args.method, args.data_dir, **update)
    p, size, seed = task.params, cell.size, cell.seed
    warmup = p.head_warmup_steps
    for glue_task in args.tasks:
        train, _ = splits(glue_task, size, seed, "test", task.data_dir, p.valid_fraction)
        parts = (glue_task, seed, size, 0)
        _, ctx, gens = task.prepare(glue_task, method, parts, train)
        if warmup:
            losses = warm_up_head(ctx, warmup, p.head_warmup_lr,
                                  make_generator(task.device, "glue_bert-head-warmup", *parts))
            print(f"{glue_task}: head warm-up MLM loss {losses[0]:.2f} -> {losses[-1]:.2f}")
        trainer = Trainer(ctx, method, gens)
        for index in trainer.batches()[:args.batches]:
            views = trainer.views(index)
            mlm, term = method.loss_parts(views, 0)
            primary = task_loss(views.task_logits(), views.batch.labels)
            pieces = [("task", primary), ("MLM", mlm)] + (
                [] if term is None else [(f"{method.name} term", term)])
            line = []
            for i, (name, loss) in enumerate(pieces):
                grads = torch.autograd.grad(loss, trainer.params, allow_unused=True,
                                            retain_graph=i < len(pieces) - 1)
                line.append(f"{name} loss {loss.item():.3f} |grad| {norm(grads):.3f}")
            print(f"{glue_task}: " + "   ".join(line))


if __name__ == "__main__":
    main()
