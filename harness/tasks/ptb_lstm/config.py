"""Settings of the PTB LSTM language-model task (paper Sec. 7.2, App. D.2; light: no torch).

Defaults are a CPU-scale model. Paper scale (Xie et al. 2017's large model, the paper's
Table 1): emb_size = hidden_size = 1500, layers 2, dropout 0.65, batch 20, bptt 35,
lr 1.0, clip 5, lr_decay 0.5, max_decays 20, max_epochs 400; IMM as fine-tuning with
finetune_below = 90 and finetune_lr = 0.5; imm_k 10 with k_every 5; lambda 0.2;
stream_eval true (the paper's test perplexity is batch 1 / unroll 1).

The dataset-size axis: a cell's ``size`` is the number of training tokens (the first
``size`` tokens of ptb.train.txt; a size at least the stream length means all of it).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, model_validator

from harness.tasks.config import TaskParams


class PtbLstmParams(TaskParams):
    """A stacked-LSTM LM on PTB (Xie et al. 2017's model); the restricted model is a
    modified Kneser-Ney bigram of the training prefix."""

    metrics: ClassVar[tuple[str, ...]] = (
        "test_ppl",
        "valid_ppl",
        "test_ppl_stream",
        "induced_ppl_train",
        "induced_ppl_valid",
        "induced_ppl_test",
    )
    higher_is_better: ClassVar[dict[str, bool]] = {m: False for m in metrics}
    operational: ClassVar[frozenset[str]] = frozenset(
        {"checkpoint", "checkpoint_dir", "stale_cache_mib"})

    emb_size: PositiveInt = Field(200, description="word embedding size (paper: 1500)")
    hidden_size: PositiveInt = Field(200, description="LSTM hidden size (paper: 1500)")
    layers: PositiveInt = Field(2, description="stacked single-layer LSTMs")
    dropout: float = Field(
        0.5, ge=0.0, lt=1.0,
        description="dropout on the embedding and each layer's output (paper: 0.65)",
    )
    init_range: PositiveFloat = Field(0.1, description="uniform init in [-r, r]")
    tie_weights: bool = Field(False, description="share embedding and decoder weights")
    batch_size: PositiveInt = Field(20, description="rows of the batchified training stream")
    bptt: PositiveInt = Field(35, description="truncated-BPTT unroll length")
    lr: PositiveFloat = Field(1.0, description="SGD learning rate")
    clip: PositiveFloat = Field(5.0, description="global-norm clip of the primary gradient")
    imm_clip: PositiveFloat = Field(
        5.0,
        description="global-norm clip of the regulariser's gradient, applied separately "
        "before the two are added (App. D.2.2)",
    )
    lr_decay: PositiveFloat = Field(
        0.5, description="lr factor when validation perplexity does not improve"
    )
    max_decays: PositiveInt = Field(20, description="stop after this many lr decays")
    max_epochs: PositiveInt = Field(6, description="stop after this many epochs (paper: 400)")
    finetune_below: PositiveFloat | None = Field(
        None,
        description="every method trains as the baseline until validation perplexity falls "
        "below this; then the lr is reset to finetune_lr for all and the regularised "
        "methods add their term (the paper's fine-tuning mode, 90); null = from the start",
    )
    finetune_lr: PositiveFloat = Field(
        0.5, description="lr reset when the regulariser starts (fine-tuning mode)"
    )
    imm_window: PositiveInt = Field(
        35, description="tokens of each sampled extended context (history window)"
    )
    imm_k: PositiveInt = Field(
        10, description="extended contexts sampled per previous word when the method's k is null"
    )
    imm_word_fraction: float = Field(
        1.0, gt=0.0, le=1.0,
        description="APPROXIMATION (1 = exact): the fraction of a batch's distinct previous "
        "words whose k-sample IMM term is computed, drawn afresh each k-sample step and "
        "reweighted so that the term's expectation is unchanged",
    )
    imm_joint_clip: bool = Field(
        False,
        description="APPROXIMATION (false = the paper's separate clips, App. D.2.2): clip "
        "the sum of the primary and the regulariser's gradients once, at clip, which saves "
        "a backward pass where the two share a forward",
    )
    stale_cache_mib: NonNegativeFloat = Field(
        4096.0,
        description="serialized IMM keeps what its refresh pass computed within this many "
        "MiB: the stale top-layer outputs of every chunk (tokens x hidden_size floats), then "
        "the stale predictions of as many chunks as still fit (tokens x vocabulary floats "
        "each), so that steps do not recompute them; the same numbers either way "
        "(operational)",
    )
    noising_variant: Literal["kn", "unigram", "blank"] = Field(
        "kn",
        description="Xie et al. noising: kn = gamma(x) = gamma0 N1+(x.)/c(x), input and "
        "target replaced by KN-continuation draws; unigram = constant gamma0, unigram "
        "draws; blank = constant gamma0, inputs replaced by a blank token",
    )
    noising_gamma0: NonNegativeFloat | None = Field(
        None,
        description="gamma0 of noising; null = r = lambda / (1 + lambda) of the method",
    )
    eval_tokens: PositiveInt | None = Field(
        None,
        description="evaluate on the first N tokens of the validation and test streams "
        "(smoke tests only; null = all, as in the paper)",
    )
    eval_batch_size: PositiveInt = Field(10, description="rows of the batched evaluation")
    stream_eval: bool = Field(
        False,
        description="also the paper's batch-1 / unroll-1 test perplexity with the state "
        "carried through the whole stream (test_ppl_stream; slow)",
    )
    induced_eval_tokens: PositiveInt | None = Field(
        100_000,
        description="tokens of each stream (and of the training pass building the induced "
        "table) used for the induced-bigram perplexities; null = all",
    )
    checkpoint: bool = Field(
        False,
        description="checkpoint every epoch and resume an interrupted cell; the directory "
        "is $HARNESS_CHECKPOINT_DIR/<cell key>, else checkpoint_dir/<cell key> (harness run "
        "sets $HARNESS_CHECKPOINT_DIR to <results>/checkpoints/<cell id> and deletes it "
        "once the cell's record is written)",
    )
    checkpoint_dir: str | None = Field(
        None, description="checkpoint root when $HARNESS_CHECKPOINT_DIR is not set"
    )

    @model_validator(mode="after")
    def _tie(self) -> PtbLstmParams:
        if self.tie_weights and self.emb_size != self.hidden_size:
            raise ValueError("tie_weights needs emb_size == hidden_size")
        return self
