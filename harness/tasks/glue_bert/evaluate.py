"""Evaluation of a fine-tuned model on a GLUE task's evaluation examples."""

from __future__ import annotations

import numpy as np
import torch

from harness.tasks.glue_bert.corpus import Encoded
from harness.tasks.glue_bert.metrics import task_metrics
from harness.tasks.glue_bert.model import BertMlmClassifier


@torch.no_grad()
def predict(model: BertMlmClassifier, enc: Encoded, batch_size: int,
            regression: bool = False) -> torch.Tensor:
    """Predicted labels (N,) (long), or for a regression head the predicted scores (N,)
    (float), in batches of similar length (little padding), no dropout."""
    was = model.training
    model.eval()
    order = torch.argsort(enc.lengths.cpu(), stable=True)
    pred = torch.empty(len(enc), dtype=torch.float32 if regression else torch.long)
    for i in range(0, len(enc), batch_size):
        index = order[i:i + batch_size]
        b = enc.rows(index)
        logits = model.classify(b.input_ids, b.attention_mask, b.token_type_ids)
        pred[index] = (logits[:, 0] if regression else logits.argmax(-1)).cpu()
    model.train(was)
    return pred


def glue_metrics(task: str, model: BertMlmClassifier, enc: Encoded, batch_size: int,
                 prefix: str = "") -> dict[str, float]:
    """{"<task>_<prefix><metric>": value} (metric names from ``metrics.METRICS``; prefix
    "m_" / "mm_" for MNLI's matched and mismatched dev sets)."""
    regression = enc.labels.is_floating_point()
    pred = predict(model, enc, batch_size, regression)
    out = task_metrics(task, pred.numpy(), enc.labels.cpu().numpy())
    return {f"{task}_{prefix}{name}": float(np.asarray(value)) for name, value in out.items()}
