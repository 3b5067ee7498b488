"""Time PTB loading, the Kneser-Ney bigram build, and rows() for a batch of 700 contexts.

Usage: python benchmarks/kn_build.py [--data-dir DIR]   (or HARNESS_DATA_DIR)
700 = batch 20 x unroll 35, the contexts of one PTB LSTM batch.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import TypeVar

import torch

from harness.data.ptb import load_ptb, resolve_data_dir
from harness.ngram.kneser_ney import KneserNeyBigram

T = TypeVar("T")


def timed(fn: Callable[[], T], repeat: int = 5) -> tuple[T, float]:
    """Result of ``fn`` and its best wall time over ``repeat`` runs (seconds)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir")
    parser.add_argument("--batch", type=int, default=700)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    data_dir = resolve_data_dir(args.data_dir)
    corpus, t_load = timed(lambda: load_ptb(data_dir), repeat=3)
    v, eos = len(corpus.vocab), corpus.eos_id
    kn, t_build = timed(lambda: KneserNeyBigram.from_stream(corpus.train, v, start_id=eos))
    prev = corpus.train[torch.randint(0, len(corpus.train), (args.batch,))]
    rows, t_rows = timed(lambda: kn.rows(prev), repeat=50)
    _, t_prob = timed(lambda: kn.prob(corpus.test[:-1], corpus.test[1:]))
    print(f"threads            {torch.get_num_threads()}")
    print(f"load PTB           {t_load:.3f} s  ({len(corpus.train):,} train tokens)")
    print(f"build KN bigram    {t_build:.3f} s  ({kn.num_bigrams:,} bigram types)")
    print(f"rows({args.batch})         {t_rows * 1e3:.2f} ms  "
          f"({args.batch / t_rows:,.0f} rows/s, {rows.numel() * 4 / 2**20:.1f} MiB)")
    print(f"prob(test stream)  {t_prob * 1e3:.2f} ms  ({len(corpus.test) - 1:,} pairs)")
    for split in ("train", "valid", "test"):
        print(f"perplexity {split:5s}   {kn.perplexity(getattr(corpus, split), start_id=eos):.3f}")


if __name__ == "__main__":
    main()
