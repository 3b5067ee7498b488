"""Perplexities of a trained LSTM LM.

- ``batched_ppl``: eval_batch_size rows, carried state, no dropout (fast).
- ``stream_ppl``: the paper's batch 1 / unroll 1 with the state carried through the whole
  stream, computed as one long batch-1 sequence forward in pieces (the same computation).
- With a method whose prediction mixes in the restricted model (interpolation), the
  perplexity of the mixed prediction (1 - r) Q + r KN.
- ``induced_ppl``: the bigram perplexity of the model's induced bigram (paper Table 5).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from harness.methods.base import Method
from harness.tasks.ptb_lstm.model import LstmLm, State
from harness.tasks.ptb_lstm.views import batchify, chunks

STREAM_PIECE = 2000


def mixes(method: Method) -> bool:
    """Whether the method's prediction mixes in the restricted model (so KN rows are
    needed): it declares the capability ``mixed_prediction``."""
    return "mixed_prediction" in method.requires


def _nll(method: Method, bigram: Any, logits: Tensor, inputs: Tensor, targets: Tensor
         ) -> Tensor:
    """Summed negative log-likelihood of ``targets``: of the model's own prediction by
    log_softmax, or of the method's mixed prediction. A mixing method whose prediction
    is the model's own (``predict`` returns its input: interpolation at r = 0) takes the
    log_softmax path too, so it equals the baseline exactly (log of a softmax differs
    from log_softmax in the last bits, differently on different processors)."""
    if mixes(method):
        words, index = torch.unique(inputs, return_inverse=True)
        rows = bigram.rows(words.cpu()).to(logits.device)[index]
        q = torch.softmax(logits, -1)
        probs = method.predict(q, rows)
        if probs is not q:
            return -probs.gather(-1, targets[..., None]).clamp_min(1e-30).log().sum()
    logp = torch.log_softmax(logits, -1)
    return -logp.gather(-1, targets[..., None]).sum()


@torch.no_grad()
def batched_ppl(model: LstmLm, stream: Tensor, rows: int, bptt: int, method: Method,
                bigram: Any) -> float:
    was_training = model.training
    model.eval()
    data = batchify(stream, rows)
    total, count = 0.0, 0
    state: State | None = None
    for inputs, targets in chunks(data, bptt):
        logits, state = model(inputs, state, dropout=False)
        total += float(_nll(method, bigram, logits, inputs, targets))
        count += targets.numel()
    model.train(was_training)
    return math.exp(total / count)


def stream_ppl(model: LstmLm, stream: Tensor, method: Method, bigram: Any) -> float:
    """Batch 1 with the state carried through the whole stream: feeding it in pieces of
    STREAM_PIECE tokens is the same computation as unroll 1, only faster."""
    return batched_ppl(model, stream, 1, STREAM_PIECE, method, bigram)


def bigram_table_ppl(table: Any, stream: Tensor) -> float:
    """Perplexity of a bigram table (``prob(prev, next)``) on a stream."""
    p = table.prob(stream[:-1], stream[1:]).double().clamp_min(1e-30)
    return math.exp(-float(p.log().mean()))
