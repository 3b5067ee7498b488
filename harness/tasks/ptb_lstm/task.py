"""The LSTM language-model task (paper Sec. 7.2, App. D.2, Tables 1 and 5).

Full model: a stacked LSTM LM; restricted model: a modified Kneser-Ney bigram of the
training prefix (or an ARPA bigram file, ``restricted_arpa``); short context: the previous
word; extended contexts: the training positions sharing it. The corpus is the params'
``corpus`` (PTB by default, WikiText, or explicit files), read from exactly the files
``PtbLstmParams.data_files`` declares. A cell's ``size`` is the number of training tokens
(a prefix of the training file). Each replicate (``runs``) trains in turn, from its own
init and dropout seeds; init and dropout seeds do not depend on the method, so cells are
paired.

Metrics are evaluated on ``request.split``: with "validation" (tuning), the test
metrics are computed on the validation stream instead, and the test stream is not read.
``restricted_ppl_valid`` / ``restricted_ppl_test`` are the restricted model's own
perplexities on the same streams as ``valid_ppl`` / ``test_ppl`` (every token after the
first; the same value for every replicate and method of a cell).

Checkpoints: with ``checkpoint: true``, each replicate checkpoints every epoch to
``<request.checkpoint_dir>/<key>/run<r>.pt`` (else ``checkpoint_dir``), where ``<key>``
hashes the task params, method, lambda, size, seed and split. ``harness run`` gives each
cell ``<results dir>/checkpoints/<cell id>`` (unless $HARNESS_CHECKPOINT_DIR is set, or
``checkpoint_dir`` is given) and deletes that directory once the cell's record is written
(harness.runner.sweep); a rerun of an interrupted cell resumes from its last completed
epoch and gives the same numbers as an uninterrupted run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from harness.data.location import data_root
from harness.methods.base import Method
from harness.tasks.base import CellRequest, Progress, Task, make_generator, stable_seed
from harness.tasks.kit import ProgressMeter
from harness.tasks.ptb_lstm.config import PtbLstmParams
from harness.tasks.ptb_lstm.corpus import load_split_files, restricted_model
from harness.tasks.ptb_lstm.evaluate import (
    batched_ppl,
    bigram_table_ppl,
    stream_ppl,
)
from harness.tasks.ptb_lstm.model import LstmLm
from harness.tasks.ptb_lstm.sampler import ContextSampler
from harness.tasks.ptb_lstm.train import Trainer
from harness.tasks.ptb_lstm.views import StaleModel, TrainContext, batchify, induced_table


class PtbLstmTask(Task):
    """LSTM LM (PTB by default) regularised towards a Kneser-Ney bigram."""

    name = "ptb_lstm"
    supplies = frozenset({"restricted", "induced", "stale_correction", "stale_prediction",
                          "noising", "mixed_prediction"})
    params: PtbLstmParams

    def __init__(self, params: PtbLstmParams, data_dir: str | None = None) -> None:
        super().__init__(params, data_dir)
        files = params.data_files(data_root(data_dir))
        self.corpus = load_split_files(files)
        self.arpa = files.get("restricted_arpa")
        self.vocab_size = len(self.corpus.vocab)
        self.eos = self.corpus.word_to_id.get("<eos>", 0)

    # ---- pieces --------------------------------------------------------------------
    def train_stream(self, size: int) -> torch.Tensor:
        """The first ``size`` training tokens (a size beyond the file is an error, never
        a shorter stream recorded under a larger size)."""
        have = len(self.corpus.train)
        if size > have:
            from harness.errors import DataError

            raise DataError(f"size {size} is more than the {have} training tokens of the "
                            "corpus's training file")
        return self.corpus.train[:size].to(self.device)

    def build_model(self, seed_parts: tuple, input_vocab: int | None = None) -> LstmLm:
        p = self.params
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stable_seed("ptb_lstm-init", *seed_parts))
            model = LstmLm(self.vocab_size, p.emb_size, p.hidden_size, p.layers, p.dropout,
                           p.init_range, p.tie_weights, input_vocab)
        model = model.to(self.device)
        model.dropout_generator = make_generator(self.device, "ptb_lstm-dropout", *seed_parts)
        return model

    def checkpoint_path(self, method: Method, request: CellRequest, run: int) -> Path | None:
        if not self.params.checkpoint:
            return None
        root = request.checkpoint_dir or self.params.checkpoint_dir
        if not root:
            return None
        key = stable_seed(self.params.model_dump(), method.name, repr(method.params),
                          method.lam, request.size, request.seed, request.split)
        return Path(root) / f"ptb_lstm-{method.name}-{key:016x}" / f"run{run}.pt"

    def train_context(self, method: Method, seed_parts: tuple, data: Tensor, bigram,
                      sampler: ContextSampler) -> TrainContext:
        """A replicate's fresh model and what the method's views read; one place, so that
        benchmarks/ptb_curve.py trains exactly as the cell does."""
        p = self.params
        blank = "noising" in method.requires and p.noising_variant == "blank"
        # Sampled contexts are drawn on the host; on the CPU with the method generator
        # itself, elsewhere with a CPU generator of its own (seeded alike).
        host = None if self.device.type == "cpu" else make_generator(
            torch.device("cpu"), "ptb_lstm-method-host", method.name, *seed_parts)
        return TrainContext(
            params=p, model=self.build_model(seed_parts, self.vocab_size + 1 if blank else None),
            bigram=bigram, sampler=sampler,
            generator=make_generator(self.device, "ptb_lstm-method", method.name, *seed_parts),
            steps_per_epoch=-(-(data.shape[1] - 1) // p.bptt),
            stale=StaleModel(data, p.bptt, self.vocab_size, p.stale_cache_mib),
            blank_id=self.vocab_size if blank else None,
            host_generator=host,
        )

    def restricted(self, train: Tensor):  # noqa: ANN201 - KneserNeyBigram | ArpaRestricted
        """The restricted model of a cell whose training prefix is ``train``."""
        return restricted_model(train, self.corpus, self.arpa, {"<unk>": self.params.arpa_unk})

    # ---- a cell --------------------------------------------------------------------
    def run(self, method: Method, request: CellRequest, progress: Progress | None = None
            ) -> dict[str, np.ndarray]:
        p = self.params
        train = self.train_stream(request.size)
        bigram = self.restricted(train)
        sampler = ContextSampler(train, self.vocab_size, p.imm_window, pad=self.eos)
        data = batchify(train, p.batch_size)
        cut = p.eval_tokens
        valid = self.corpus.valid[:cut].to(self.device)
        final = valid if request.split == "validation" else self.corpus.test[:cut].to(
            self.device)
        results: dict[str, list[float]] = {}
        own = {"restricted_ppl_valid": bigram.perplexity(valid.cpu()),
               "restricted_ppl_test": bigram.perplexity(final.cpu())}
        meter = ProgressMeter(progress, request.runs)
        for run in range(request.runs):
            ctx = self.train_context(method, (request.seed, request.size, run), data, bigram,
                                     sampler)
            model = ctx.model
            Trainer(ctx, method, data, valid, self.checkpoint_path(method, request, run),
                    meter.start(run)).train()
            model.eval()
            values = self.evaluate(model, method, bigram, train, valid, final, data)
            for name, value in {**values, **own}.items():
                results.setdefault(name, []).append(value)
        return {k: np.asarray(v, dtype=float) for k, v in results.items()}

    def evaluate(self, model: LstmLm, method: Method, bigram, train, valid, final, data
                 ) -> dict[str, float]:
        p = self.params
        out = {
            "test_ppl": batched_ppl(model, final, p.eval_batch_size, p.bptt, method, bigram),
            "valid_ppl": batched_ppl(model, valid, p.eval_batch_size, p.bptt, method, bigram),
        }
        if p.stream_eval:
            out["test_ppl_stream"] = stream_ppl(model, final, method, bigram)
        cap = p.induced_eval_tokens
        table_data = data if cap is None else batchify(train[:cap], p.batch_size)
        table = induced_table(model, table_data, p.bptt, self.vocab_size)
        for name, stream in (("train", train), ("valid", valid), ("test", final)):
            out[f"induced_ppl_{name}"] = bigram_table_ppl(table, stream[:cap])
        return out
