"""Evaluation of a fine-tuned model on a GLUE task's evaluation examples."""

from __future__ import annotations

import numpy as np
import torch

from harness.tasks.glue_bert.corpus import Encoded
from harness.tasks.glue_bert.metrics import task_metrics
from harness.tasks.glue_bert.model import BertMlmClassifier


@torch.no_grad()
def predict(model: BertMlmClassifier, enc: Encoded, batch_size: int) -> torch.Tensor:
    """Predicted labels (N,), in batches of similar length (little padding), no dropout."""
    was = model.training
    model.eval()
    order = torch.argsort(enc.lengths.cpu(), stable=True)
    pred = torch.empty(len(enc), dtype=torch.long)
    for i in range(0, len(enc), batch_size):
        index = order[i:i + batch_size]
        b = enc.rows(index)
        pred[index] = model.classify(b.input_ids, b.attention_mask,
                                     b.token_type_ids).argmax(-1).cpu()
    model.train(was)
    return pred


def glue_metrics(task: str, model: BertMlmClassifier, enc: Encoded, batch_size: int
                 ) -> dict[str, float]:
    """{"<task>_<metric>": value} (metric names from ``metrics.METRICS``)."""
    pred = predict(model, enc, batch_size)
    out = task_metrics(task, pred.numpy(), enc.labels.cpu().numpy())
    return {f"{task}_{name}": float(np.asarray(value)) for name, value in out.items()}
