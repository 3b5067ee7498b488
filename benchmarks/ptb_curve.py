"""Per-epoch validation perplexity of one method of a PTB spec (default specs/ptb_finetune.yaml,
its first size, seed 0), trained exactly as its cell is (same initial weights, method
generator, recipe), to see whether the model is still learning when training stops and
what the paper's fine-tuning schedule does.

--finetune-below P: once validation perplexity falls below P the lr is reset to
finetune_lr and the regulariser starts (the paper's fine-tuning mode; the baseline gets the
same lr reset, so it is the control for it). Default: the spec's own finetune_below;
--from-start: the regulariser from the first step, no lr reset.
Validation only: the test split is never read.

Usage: python benchmarks/ptb_curve.py METHOD [--spec specs/ptb_finetune.yaml] [--epochs 6]
       [--finetune-below P | --from-start] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import time

from harness.runner.execute import first_cell
from harness.spec import load_spec
from harness.tasks.ptb_lstm.corpus import build_bigram
from harness.tasks.ptb_lstm.sampler import ContextSampler
from harness.tasks.ptb_lstm.train import Trainer, describe
from harness.tasks.ptb_lstm.views import batchify


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("method", help="method name of the spec (e.g. baseline, imm_sampled)")
    parser.add_argument("--spec", default="specs/ptb_finetune.yaml")
    parser.add_argument("--epochs", type=int, default=None, help="default: the spec's")
    schedule = parser.add_mutually_exclusive_group()
    schedule.add_argument("--finetune-below", type=float, default=None)
    schedule.add_argument("--from-start", action="store_true")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    spec = load_spec(args.spec)
    update = {"checkpoint": False}
    if args.epochs:
        update["max_epochs"] = args.epochs
    if args.finetune_below is not None or args.from_start:
        update["finetune_below"] = args.finetune_below
    cell, task, method = first_cell(spec, args.method, args.data_dir, **update)
    p, size, seed = task.params, cell.size, cell.seed
    train = task.train_stream(size)
    data = batchify(train, p.batch_size)
    ctx = task.train_context(method, (seed, size, 0), data,
                             build_bigram(train.cpu(), task.vocab_size),
                             ContextSampler(train, task.vocab_size, p.imm_window, pad=task.eos))
    trainer = Trainer(ctx, method, data, task.corpus.valid.to(task.device), None)
    start = time.perf_counter()
    state = trainer.train()
    info = describe(state)
    curve = ", ".join(f"{v:.1f}" for v in info["history"])
    print(f"{args.method}: validation perplexity by epoch {curve}; best {info['best_val']:.2f}, "
          f"lr {info['lr']}, {info['decays']} decays, {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
