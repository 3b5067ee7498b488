"""What is fixed about each training batch across epochs, computed once per run.

The batchified training stream and its unroll never change during a run, so neither do a
batch's distinct previous words, the item -> word map, the words' counts, nor how their
Kneser-Ney rows are formed. Computing them once per run (``plan_batches``) takes
``torch.unique`` and every size that depends on the data out of the step: on a GPU the
step then never waits for a value to come back to the host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from harness.ngram.kn_device import RowPlan
from harness.ngram.kneser_ney import KneserNeyBigram


@dataclass(frozen=True)
class BatchPlan:
    """One (B, T) batch's previous words: ``words[index]`` are the inputs."""

    chunk: int | None      # the batch's position in the epoch (None: not a training chunk)
    words: Tensor          # (D,) sorted distinct previous words, on the device
    index: Tensor          # (B, T) item -> row of ``words``, on the device
    counts: Tensor         # (D,) float32 items per word, on the device
    host_words: Tensor     # (D,) the same words on the host (sampling runs there)
    rows: RowPlan | None   # how to form their KN rows on the device (KN bigrams only)

    @property
    def size(self) -> int:
        return len(self.host_words)


def plan_batch(inputs: Tensor, bigram: Any, chunk: int | None = None) -> BatchPlan:
    """The plan of one batch (host work: a ``unique`` and a few small tensors)."""
    device = inputs.device
    words, index, counts = torch.unique(inputs.cpu(), return_inverse=True, return_counts=True)
    rows = RowPlan.build(bigram, words, device) if isinstance(bigram, KneserNeyBigram) else None
    return BatchPlan(chunk=chunk, words=words.to(device), index=index.to(device),
                     counts=counts.to(torch.float32).to(device), host_words=words, rows=rows)


def plan_batches(data: Tensor, bptt: int, bigram: Any) -> list[BatchPlan]:
    """The plans of every chunk of a batchified stream, in epoch order."""
    from harness.tasks.ptb_lstm.views import chunks

    return [plan_batch(inputs, bigram, j) for j, (inputs, _) in enumerate(chunks(data, bptt))]


def to_device(host: Tensor, device: torch.device) -> Tensor:
    """A host tensor on ``device`` without making the host wait for the device: pinned
    memory and a non-blocking copy on CUDA; the tensor itself on the CPU."""
    if device.type == "cpu":
        return host
    return host.pin_memory().to(device, non_blocking=True)
