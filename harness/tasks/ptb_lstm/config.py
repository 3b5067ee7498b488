"""Settings of the LSTM language-model task (paper Sec. 7.2, App. D.2; light: no torch).

Defaults are a CPU-scale model. Paper scale (Xie et al. 2017's large model, the paper's
Table 1): emb_size = hidden_size = 1500, layers 2, dropout 0.65, batch 20, bptt 35,
lr 1.0, clip 5, lr_decay 0.5, max_decays 20, max_epochs 400; IMM as fine-tuning with
finetune_below = 90 and finetune_lr = 0.5; imm_k 10 with k_every 5; lambda 0.2;
stream_eval true (the paper's test perplexity is batch 1 / unroll 1).

The corpus (``corpus``): ``ptb`` (Mikolov's PTB, the paper's, the default), ``wikitext2``,
``wikitext103`` (the tokenized v1 releases) or explicit files ``{train, valid, test}``
relative to the data directory (``harness.data.corpora``). The corpus's files are
fingerprinted into the cell id, so another corpus means other cells; ``corpus: ptb`` (the
default) stays out of the id, so specs that do not set it keep their cells.

The restricted model: the modified Kneser-Ney bigram of the cell's training prefix, or an
ARPA bigram file (``restricted_arpa``, e.g. KenLM's ``lmplz -o 2``; see the README's KenLM
section), fingerprinted too. Its own perplexities on the evaluation streams are recorded
as ``restricted_ppl_valid`` and ``restricted_ppl_test`` (Table 5's first row).

The dataset-size axis: a cell's ``size`` is the number of training tokens (the first
``size`` tokens of the training file, ``<eos>`` included; the file's length is the
largest size, and a larger one is an error before any training).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import (
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

from harness.errors import DataError
from harness.spec.strict import StrictModel
from harness.tasks.config import SizeLimit, TaskParams

CorpusName = Literal["ptb", "wikitext2", "wikitext103"]
CORPUS_NAMES: tuple[str, ...] = ("ptb", "wikitext2", "wikitext103")


class CorpusFiles(StrictModel):
    """A corpus given as three files, relative to the data directory (or absolute), each
    read as PTB is: words of each line, ``<eos>`` at the line end."""

    train: str = Field(min_length=1, description="training text")
    valid: str = Field(min_length=1, description="validation text")
    test: str = Field(min_length=1, description="test text")


class PtbLstmParams(TaskParams):
    """A stacked-LSTM LM (Xie et al. 2017's model) on a named corpus (PTB by default); the
    restricted model is a modified Kneser-Ney bigram of the training prefix (or an ARPA
    bigram file)."""

    contract_params: ClassVar[dict] = {
        "emb_size": 8, "hidden_size": 8, "layers": 1, "batch_size": 4, "bptt": 10,
        "max_epochs": 1, "eval_batch_size": 4, "eval_tokens": 400, "induced_eval_tokens": 400,
        "imm_window": 5, "imm_k": 2}
    contract_size: ClassVar[int] = 800
    contract_runs: ClassVar[int] = 1
    metrics: ClassVar[tuple[str, ...]] = (
        "test_ppl",
        "valid_ppl",
        "test_ppl_stream",
        "induced_ppl_train",
        "induced_ppl_valid",
        "induced_ppl_test",
        "restricted_ppl_valid",
        "restricted_ppl_test",
    )
    higher_is_better: ClassVar[dict[str, bool]] = {m: False for m in metrics}
    paired_replicates: ClassVar[bool] = True  # replicate i: same init/dropout seeds, any method
    operational: ClassVar[frozenset[str]] = frozenset(
        {"checkpoint", "checkpoint_dir", "stale_cache_mib"})
    # The noising cells' ids carry the coin form even at its default: the default became
    # Xie et al.'s one coin, so results of the earlier two-coin default are not reused.
    method_identity: ClassVar[dict[str, tuple[str, ...]]] = {"noising": ("noising_coins",)}

    corpus: CorpusName | CorpusFiles = Field(
        "ptb",
        description="the text: ptb (Mikolov's PTB, the paper's), wikitext2 or wikitext103 "
        "(the tokenized v1 releases, wiki.{train,valid,test}.tokens under <data dir>/"
        "wikitext-2/ (-103/) or in the data directory, else the hub dataset "
        "Salesforce/wikitext when online), or {train: FILE, valid: FILE, test: FILE} "
        "relative to the data directory",
    )
    restricted_arpa: str | None = Field(
        None,
        description="an ARPA bigram file (relative to the data directory, or absolute) used "
        "as the restricted model instead of the KN bigram of the training prefix (the same "
        "file at every size); e.g. KenLM's lmplz -o 2 (scripts/arpa_bigram.sh)",
    )
    arpa_unk: str = Field(
        "<ptb-unk>", min_length=1,
        description="how the ARPA file spells the corpus's <unk> (lmplz reserves <unk>, so "
        "scripts/arpa_bigram.sh renames it <ptb-unk>)",
    )
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
    noising_variant: Literal["kn", "mbgkn", "unigram", "blank"] = Field(
        "kn",
        description="the scheme of Xie et al.'s noising (their code's --ngram_scheme / "
        "--scheme): kn = input and target replaced by draws from the continuation "
        "distribution N1+(.w)/N1+(..), at rate gamma0 N1+(x.)/c(x); mbgkn = the same draws "
        "at rate gamma0 (D1 N1(x.) + D2 N2(x.) + D3+ N3+(x.))/c(x); unigram = the input "
        "replaced by a unigram draw, at rate gamma0; blank = the input replaced by a blank "
        "token, at rate gamma0 (harness.tasks.ptb_lstm.noising)",
    )
    noising_coins: Literal["one", "two"] = Field(
        "one",
        description="one = Xie et al.'s code: one coin per position, whose firing replaces "
        "what the scheme replaces; two = the harness's earlier form: independent coins "
        "for input and target, kn drawing from the KN bigram's discounted lower order and "
        "unigram replacing the target too",
    )
    noising_discounting: bool | None = Field(
        None,
        description="scale gamma0 by the input word's discount (their code's "
        "--absolute_discounting); null = the scheme's own: on for kn and mbgkn, off for "
        "unigram and blank",
    )
    noising_gamma0: NonNegativeFloat | None = Field(
        None, le=1.0,
        description="gamma0 of noising, at most 1; null = the noising method's probability, "
        "r = lambda / (1 + lambda) (lambda 0.25: gamma0 0.2)",
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

    @field_validator("corpus", mode="before")
    @classmethod
    def _known_corpus(cls, value: object) -> object:
        if isinstance(value, str) and value not in CORPUS_NAMES:
            close = difflib.get_close_matches(value, CORPUS_NAMES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown corpus {value!r}{hint}; known: "
                             f"{', '.join(CORPUS_NAMES)}, or {{train: FILE, valid: FILE, "
                             "test: FILE}")
        return value

    def corpus_key(self) -> str | dict[str, str]:
        """The corpus as ``harness.data.corpora`` takes it: a name or {split: file}."""
        return self.corpus if isinstance(self.corpus, str) else self.corpus.model_dump()

    def arpa_path(self, root: Path | None) -> Path | None:
        """The ``restricted_arpa`` file (None: none asked for); DataMissingError if absent."""
        from harness.errors import DataMissingError

        if self.restricted_arpa is None:
            return None
        path = Path(self.restricted_arpa).expanduser()
        if not path.is_absolute():
            if root is None:
                raise DataMissingError(f"restricted_arpa {self.restricted_arpa!r} is relative "
                                       "to the data directory, and none was given (pass "
                                       "--data-dir, the spec's data_dir or HARNESS_DATA_DIR)")
            path = root / path
        if not path.is_file():
            raise DataMissingError(f"restricted_arpa: ARPA file {path} not found (build one "
                                   "with scripts/arpa_bigram.sh; see the README's KenLM "
                                   "section)")
        return path

    def expected_metrics(self) -> tuple[str, ...]:
        """Every declared metric; the batch-1 stream perplexity only with stream_eval."""
        return tuple(m for m in self.metrics if self.stream_eval or m != "test_ppl_stream")

    def data_files(self, root: Path | None) -> dict[str, Path | str]:
        """The corpus's three splits and, with ``restricted_arpa``, the ARPA file."""
        from harness.data.corpora import corpus_files

        files = corpus_files(self.corpus_key(), root)
        arpa = self.arpa_path(root)
        if arpa is not None:
            files["restricted_arpa"] = arpa
        return files

    def size_limits(self, files: dict[str, Path | str]) -> list[SizeLimit]:
        """A size is a number of training tokens: at most the training file's."""
        from harness.data.corpora import token_count

        return [SizeLimit(token_count(files["train"]), "training tokens", str(files["train"]))]

    def check_data(self, files: dict[str, Path | str], sizes: Sequence[int]) -> None:
        """Each size needs two columns of ``batch_size`` rows; each evaluation stream two
        of ``eval_batch_size`` rows (after the ``eval_tokens`` cut)."""
        from harness.data.corpora import SPLITS, check_files
        from harness.tasks.ptb_lstm.corpus import check_arpa

        train_rows, eval_rows = 2 * self.batch_size, 2 * self.eval_batch_size
        for name, tokens, rows in (("sizes", min(sizes), train_rows),
                                   ("eval_tokens", self.eval_tokens, eval_rows),
                                   ("induced_eval_tokens", self.induced_eval_tokens,
                                    train_rows)):
            if tokens is not None and tokens < rows:
                raise DataError(f"{name}: {tokens} tokens is too short: the batch geometry "
                                f"needs at least {rows}")
        splits = {split: files[split] for split in SPLITS}
        counts = check_files(splits, {"train": train_rows, "valid": eval_rows,
                                      "test": eval_rows})
        smallest = min(min(sizes), counts["train"])
        if smallest < train_rows:
            raise DataError(f"{splits['train']}: {smallest} training tokens at size "
                            f"{min(sizes)}; batch_size {self.batch_size} needs {train_rows}")
        if "restricted_arpa" in files:
            check_arpa(Path(files["restricted_arpa"]))
