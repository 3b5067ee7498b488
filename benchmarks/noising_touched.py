"""How much of the training text the LM task's noising changes: per scheme and coin form,
the share of positions whose coin fires (expected, from the rates) and the share whose
input or target actually changed (one noising of the whole prefix), at gamma0.

Usage: python benchmarks/noising_touched.py [--tokens 200000] [--gamma0 0.2]
       [--data-dir DIR] [--seed 0]
"""

from __future__ import annotations

import argparse

import torch

from harness.tasks.base import make_generator
from harness.tasks.ptb_lstm.config import PtbLstmParams
from harness.tasks.ptb_lstm.corpus import build_bigram, load_corpus
from harness.tasks.ptb_lstm.noising import NoisingCounts, noise_batch, noising_rate
from harness.tasks.ptb_lstm.views import batchify


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=200_000)
    parser.add_argument("--gamma0", type=float, default=0.2)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    corpus = load_corpus(args.data_dir)
    train = corpus.train[: args.tokens]
    vocab = len(corpus.vocab)
    counts = NoisingCounts.of(build_bigram(train, vocab))
    data = batchify(train, args.batch_size)
    x, y = data[:, :-1], data[:, 1:]
    print(f"{x.numel()} positions of the first {len(train)} PTB training tokens, "
          f"gamma0 {args.gamma0}")
    print(f"{'scheme':8} {'coins':5} {'fires (expected)':>17} {'changed (measured)':>19}")
    for variant in ("kn", "mbgkn", "unigram", "blank"):
        for coins in ("one", "two"):
            params = PtbLstmParams(noising_variant=variant, noising_coins=coins)
            rate = noising_rate(params, counts, x, args.gamma0).clamp_max(1.0)
            both = variant != "blank" and coins == "two"  # a second coin for the target
            fires = float((1 - (1 - rate) ** 2).mean() if both else rate.mean())
            gen = make_generator(torch.device("cpu"), "noising-touched", args.seed)
            xn, yn = noise_batch(params, counts, x, y, args.gamma0, gen, vocab)
            changed = float(((xn != x) | (yn != y)).double().mean())
            print(f"{variant:8} {coins:5} {fires:17.4f} {changed:19.4f}")


if __name__ == "__main__":
    main()
