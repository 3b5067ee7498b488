"""The MLM head of a checkpoint that ships none, adapted on general text.

Table 2's "+MLM" re-introduces a pre-training objective, so the MLM branch must start as
a trained language model; a checkpoint without MLM head weights (the CPU-scale MiniLM) would
otherwise fine-tune a random head, a new task. ``mlm_head`` in the spec turns on this
stage for such a checkpoint:

1. General text (``mlm_head.corpus``: WikiText-2 when given, else PTB; see
   ``general_text``), its lines tokenized as the model reads a sentence; BERT's masking
   (``mlm_probability``, 80% [MASK] / 10% random / 10% kept, at least one a line) drawn
   once from a fixed seed; the frozen encoder's last-layer states at the masked positions
   computed once, in no-grad passes, and cached with their targets.
2. BERT's prediction head (``BertLMPredictionHead``: dense + GELU + LayerNorm, then the
   decoder, which is the word-embedding matrix, tied as in BERT and so already trained,
   plus an output bias) trained on those states: AdamW on the transform and the bias
   (the tied decoder stays the encoder's embeddings), minibatches of masked positions,
   the held-out loss (the validation file's states, masked the same way) measured every
   ``eval_every`` steps; stopped after ``patience`` evaluations without a new best, and
   the best state kept.
3. The held-out MLM loss of that state (nats per masked position) is the head's figure:
   recorded in every cell (metric ``mlm_head_loss``) and held against ``target_loss``:
   with ``require_target`` a cell that trains the MLM branch fails, naming the figure,
   when it is above.

Cache: the result (the head's own weights and its figures) is a file named by a
fingerprint of everything that determines it: the checkpoint's files (sha256 of its
weights, config and vocabulary), the mask token, the corpus files' sha256, ``max_length``,
the line counts and ``mlm_probability``, and the training settings (``target_loss`` and
``require_target`` excepted: they do not change the head). It is computed once and shared
by every method, seed, GLUE task and spec, by whichever process needs it first, the others
waiting for it (``harness.computed_once``: an OS lock, an atomic publish; a process killed
while computing leaves nothing behind, and the next one computes it again). The encoder
states of step 1 are cached the same way under their own fingerprint (checkpoint, mask
token, corpus files, masking), so changing only the head's training settings does not
re-encode the corpus. The head is adapted in float32 whatever the spec's ``precision``.
The cache is a warm start owned by the task: a stage every cell forks from, trained once
per key rather than once per cell.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from harness.atomic import atomic_write_json
from harness.computed_once import computed_once
from harness.data.fingerprint import cache_dir, fingerprint
from harness.tasks.base import stable_seed
from harness.tasks.glue_bert.config import MlmHeadParams
from harness.tasks.glue_bert.corpus import Batch
from harness.tasks.glue_bert.general_text import read_lines
from harness.tasks.glue_bert.model import BertMlmClassifier, special_tokens_mask
from harness.tasks.glue_bert.train import head_own_parameters, mask_tokens

HEAD_FORMAT = 1  # bump when the adaptation's algorithm changes: old cache entries go stale
CACHE_FOLDER = "mlm_heads"
ROWS_PER_PASS = 64  # lines per no-grad encoder pass (sorted by length: little padding)
EVAL_CHUNK = 4096  # positions per held-out evaluation pass
MIN_GAIN = 0.005  # nats: an evaluation below the best by less is no new best
CHECKPOINT_FILES = ("config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json",
                    "special_tokens_map.json", "model.safetensors", "pytorch_model.bin")


@dataclass
class MaskedStates:
    """The frozen encoder's last-layer states at the masked positions of a corpus split
    (N, H), stored as float16 (half the memory and disk; the head reads them as float32,
    whether fresh or loaded from the cache), the original tokens there (N,), and the
    number of lines they came from."""

    states: Tensor
    targets: Tensor
    lines: int
    seconds: float = 0.0  # what the encoding took


@dataclass
class AdaptedHead:
    """An adapted head: its own weights and what its adaptation measured."""

    state: dict[str, Tensor]
    valid_loss: float  # the best held-out MLM loss, nats per masked position
    initial_loss: float  # the same loss before any step (the fresh head)
    best_step: int
    steps: int  # steps taken (the stopping rule's last evaluation)
    history: list[tuple[int, float]]  # (step, held-out loss) at every evaluation
    train_positions: int
    valid_positions: int
    seconds: dict[str, float] = field(default_factory=dict)  # encode, train
    key: str = ""

    def info(self) -> dict[str, Any]:
        """Everything but the weights, as JSON."""
        out = asdict(self)
        out.pop("state")
        return out

    def save(self, path: Path) -> None:
        torch.save({"state": self.state, "info": self.info()}, path)

    @classmethod
    def load(cls, path: Path) -> AdaptedHead:
        data = torch.load(path, map_location="cpu", weights_only=True)
        info = dict(data["info"])
        info["history"] = [tuple(h) for h in info["history"]]
        return cls(state=data["state"], **info)


# ---- identity -----------------------------------------------------------------------------
def checkpoint_identity(checkpoint: str) -> dict[str, Any]:
    """What identifies a checkpoint's weights and vocabulary: the sha256 of its files for a
    local folder, else its hub name."""
    folder = Path(checkpoint)
    if not folder.is_dir():
        return {"name": checkpoint}
    return {name: fingerprint(folder / name).sha256 for name in CHECKPOINT_FILES
            if (folder / name).is_file()}


def _file_identity(where: Path | str) -> str:
    return where if isinstance(where, str) else fingerprint(where).sha256


def _digest(payload: dict[str, Any]) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def states_key(checkpoint: str, files: dict[str, Path | str], settings: MlmHeadParams,
               mlm_probability: float, mask_token_id: int) -> str:
    """The fingerprint of the cached encoder states: checkpoint, corpus files, masking."""
    return _digest({
        "format": HEAD_FORMAT, "checkpoint": checkpoint_identity(checkpoint),
        "mask_token_id": mask_token_id,
        "files": {split: _file_identity(where) for split, where in sorted(files.items())},
        "max_length": settings.max_length, "train_lines": settings.train_lines,
        "valid_lines": settings.valid_lines, "mlm_probability": mlm_probability,
    })


def head_key(states: str, settings: MlmHeadParams) -> str:
    """The fingerprint of an adapted head: its states' key and the training settings."""
    training = settings.model_dump(mode="json", exclude={"target_loss", "require_target"})
    return _digest({"format": HEAD_FORMAT, "states": states, "training": training})


def head_cache(setting: str | None) -> Path:
    """The cache folder: ``mlm_head_cache`` when given, else the harness cache's
    ``mlm_heads`` (``$HARNESS_CACHE_DIR``, else ``~/.cache/harness``)."""
    return Path(setting).expanduser() if setting else cache_dir() / CACHE_FOLDER


# ---- step 1: the encoder states -------------------------------------------------------------
@contextmanager
def frozen_encoder(model: BertMlmClassifier) -> Iterator[None]:
    """Only the head's own parameters require gradients (the tied decoder is the encoder's
    embedding matrix: no gradient is computed for it); evaluation mode, no dropout."""
    own = {id(q) for q in head_own_parameters(model).values()}
    saved = [(q, q.requires_grad) for q in model.parameters()]
    was = model.training
    model.eval()
    try:
        for q, _ in saved:
            q.requires_grad_(id(q) in own)
        yield
    finally:
        for q, flag in saved:
            q.requires_grad_(flag)
        model.train(was)


@torch.no_grad()
def masked_states(model: BertMlmClassifier, tokenizer: Any, lines: list[str],
                  max_length: int, probability: float, generator: torch.Generator
                  ) -> MaskedStates:
    """BERT's masking of every line (one draw each) and the encoder's last-layer states at
    the masked positions, in passes of ``ROWS_PER_PASS`` lines of similar length."""
    ids = tokenizer(lines, truncation=True, max_length=max_length)["input_ids"]
    order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), i))
    device = next(model.parameters()).device
    pad = int(tokenizer.pad_token_id)
    states, targets = [], []
    for start in range(0, len(order), ROWS_PER_PASS):
        rows = [ids[i] for i in order[start:start + ROWS_PER_PASS]]
        width = max(len(r) for r in rows)
        input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=device)
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows],
                            device=device)
        candidates = ~special_tokens_mask(tokenizer, input_ids) & mask.bool()
        candidates[:, 0] = False
        types = torch.zeros_like(input_ids)
        batch = Batch(input_ids, mask, types, types[:, 0], candidates,
                      torch.arange(len(rows)))
        mlm = mask_tokens(batch, probability, int(model.mask_token_id),
                          int(model.config.vocab_size), generator)
        hidden = model.encode(mlm.input_ids, mask, types).last_hidden_state
        states.append(hidden[mlm.select].to(torch.float16).cpu())
        targets.append(mlm.targets.cpu())
    return MaskedStates(torch.cat(states), torch.cat(targets), len(lines))


# ---- step 2: training the head --------------------------------------------------------------
@torch.no_grad()
def held_out_loss(model: BertMlmClassifier, data: MaskedStates) -> float:
    """Mean MLM cross-entropy (nats) of the head over every held-out masked position."""
    device = next(model.parameters()).device
    total = 0.0
    for i in range(0, len(data.targets), EVAL_CHUNK):
        logits = model.mlm_logits(data.states[i:i + EVAL_CHUNK].to(device).float())
        total += F.cross_entropy(logits, data.targets[i:i + EVAL_CHUNK].to(device),
                                 reduction="sum").item()
    return total / max(1, len(data.targets))


def train_head(model: BertMlmClassifier, train: MaskedStates, valid: MaskedStates,
               settings: MlmHeadParams, generator: torch.Generator) -> AdaptedHead:
    """Train the head's own parameters on ``train`` (see the module docstring); the model
    ends with the best state loaded."""
    device = next(model.parameters()).device
    own = head_own_parameters(model)
    with frozen_encoder(model):
        opt = torch.optim.AdamW(own.values(), lr=settings.lr, weight_decay=0.0)
        initial = best = held_out_loss(model, valid)
        best_state = {k: q.detach().clone() for k, q in own.items()}
        history: list[tuple[int, float]] = [(0, initial)]
        best_step, since, step = 0, 0, 0
        n = len(train.targets)
        while step < settings.max_steps and since < settings.patience:
            step += 1
            index = torch.randint(n, (settings.batch_size,), generator=generator)
            states = train.states[index].to(device).float()
            loss = F.cross_entropy(model.mlm_logits(states), train.targets[index].to(device))
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"MLM head adaptation: loss {loss.item()} at step "
                                         f"{step}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step % settings.eval_every == 0 or step == settings.max_steps:
                value = held_out_loss(model, valid)
                history.append((step, value))
                if value < best - MIN_GAIN:
                    best, best_step, since = value, step, 0
                    best_state = {k: q.detach().clone() for k, q in own.items()}
                else:
                    since += 1
        install(model, best_state)
    model.zero_grad(set_to_none=True)
    return AdaptedHead({k: v.cpu() for k, v in best_state.items()}, best, initial,
                       best_step, step, history, n, len(valid.targets))


def install(model: BertMlmClassifier, state: dict[str, Tensor]) -> None:
    """Copy an adapted head's own weights into ``model`` (the decoder stays tied)."""
    own = head_own_parameters(model)
    if set(own) != set(state):
        raise ValueError(f"adapted MLM head has parameters {sorted(state)}, the model's head "
                         f"{sorted(own)}")
    with torch.no_grad():
        for name, q in own.items():
            q.copy_(state[name].to(q.device))


# ---- the cached stage -----------------------------------------------------------------------
def adapted_head(model: BertMlmClassifier, tokenizer: Any, checkpoint: str,
                 files: dict[str, Path | str], settings: MlmHeadParams,
                 mlm_probability: float, folder: Path) -> tuple[AdaptedHead, bool]:
    """The adapted head for ``model`` (loaded from ``folder`` or computed once there and
    installed into ``model``), and whether this call computed it. ``files``: the corpus's
    {"train": ..., "valid": ...} files. ``model`` must hold the checkpoint's weights."""
    skey = states_key(checkpoint, files, settings, mlm_probability, int(model.mask_token_id))
    hkey = head_key(skey, settings)

    def encode(split: str, limit: int | None) -> MaskedStates:
        clock = time.perf_counter()
        lines = read_lines(files[split], tokenizer.unk_token)[:limit]
        gen = torch.Generator().manual_seed(stable_seed("glue_bert-mlm-head-mask", split))
        with frozen_encoder(model):
            out = masked_states(model, tokenizer, lines, settings.max_length,
                                mlm_probability, gen)
        out.seconds = round(time.perf_counter() - clock, 2)
        return out

    def compute() -> AdaptedHead:
        train, valid = computed_once(
            folder / f"states-{skey}.pt",
            lambda: (encode("train", settings.train_lines), encode("valid",
                                                                   settings.valid_lines)),
            _save_states, _load_states).value
        clock = time.perf_counter()
        gen = torch.Generator().manual_seed(stable_seed("glue_bert-mlm-head-batches"))
        head = train_head(model, train, valid, settings, gen)
        head.seconds = {"encode": train.seconds + valid.seconds,
                        "train": round(time.perf_counter() - clock, 2)}
        head.key = hkey
        return head

    outcome = computed_once(folder / f"head-{hkey}.pt", compute, AdaptedHead.save,
                            AdaptedHead.load)
    if outcome.computed:  # its figures, readable without torch
        atomic_write_json(folder / f"head-{hkey}.json", outcome.value.info())
    else:
        install(model, outcome.value.state)
    return outcome.value, outcome.computed


def _save_states(value: tuple[MaskedStates, MaskedStates], path: Path) -> None:
    train, valid = value
    torch.save({"train": asdict(train), "valid": asdict(valid)}, path)


def _load_states(path: Path) -> tuple[MaskedStates, MaskedStates]:
    data = torch.load(path, map_location="cpu", weights_only=True)
    return MaskedStates(**data["train"]), MaskedStates(**data["valid"])


def check_bar(head: AdaptedHead, target: float) -> None:
    """Raise (one line naming the figure) when the head misses the bar ``target``."""
    if head.valid_loss > target:
        raise ValueError(
            f"mlm_head: the adapted MLM head's held-out loss is {head.valid_loss:.3f} nats, "
            f"above mlm_head.target_loss {target} (best at step {head.best_step} of "
            f"{head.steps}; cache entry head-{head.key}.json)")
