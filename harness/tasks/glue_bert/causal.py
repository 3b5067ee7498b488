"""The causal view of BERT's MLM branch for IMM (paper App. D.2.2): to predict the token
at position i, that token and every later one are hidden, so BERT acts as a next-token
model and its induced model can be matched to a causal (Kneser-Ney bigram) target.

Two modes, both batched over sentences and positions:

``"causal_prefix"`` (default; ONE forward pass per batch, cost ~ (L + m) tokens a row for
m chosen positions). The row's L real tokens are followed by m [MASK] copies, the s-th
carrying the position id (and token type) of the s-th chosen position p_s. A per-query
additive 4-D mask (B, 1, L+m, L+m) lets
  - real token j attend to real tokens k <= j (causal over the real tokens; pads excluded),
  - mask copy s attend to real tokens k < p_s and to itself, nothing else.
No real token ever attends to a mask copy or to a later real token, so nothing at
positions >= p_s reaches copy s through any layer. The prediction for p_s is the MLM head
at copy s. Reference it equals (tests/test_glue_causal.py, ~1e-5 in float32): for each
chosen p, a separate forward of the truncated input [t_0 .. t_{p-1}, MASK] (position ids
0..p, the original token types) under a lower-triangular (causal) self-attention mask,
read at the last position.

``"bidirectional_prefix"`` (the paper's wording taken literally: BERT's usual
bidirectional attention over the visible prefix; the prefix states then depend on p, so
one sentence costs one truncated sequence per chosen position, ~m * L / 2 tokens a row).
Batched as one pass over the n truncated sequences [t_0 .. t_{p-1}, MASK] (padded,
ordinary 2-D padding mask); equal to the per-position forwards by construction.

The masks are additive float (0 / dtype min), which both the "eager" (adds to scores) and
"sdpa" (``attn_mask``) implementations of transformers 5.x accept unchanged: a 4-D mask
is passed through ``create_bidirectional_mask`` as-is. Explicit ``position_ids`` go to
``BertModel.forward``. Positions are WordPiece tokens; [CLS] (position 0) is always
visible and is never predicted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

Mode = Literal["causal_prefix", "bidirectional_prefix"]


@dataclass
class CausalInputs:
    """One packed pass: ``input_ids``/``position_ids``/``token_type_ids`` (B, L+M),
    ``attention_mask`` (B, 1, L+M, L+M) additive float, and where to read: the copies
    ``read`` (B, M) bool over the last M columns."""

    input_ids: Tensor
    position_ids: Tensor
    token_type_ids: Tensor
    attention_mask: Tensor
    read: Tensor
    length: int


@dataclass
class CausalOutput:
    """Logits (n, V) for the chosen positions in row-major order of ``select``, with
    their ``rows``, ``cols`` (n,) and the true tokens there, ``targets`` (n,)."""

    logits: Tensor
    rows: Tensor
    cols: Tensor
    targets: Tensor


def _check_select(select: Tensor, attention_mask: Tensor) -> Tensor:
    select = select.bool()
    if select[:, 0].any():
        raise ValueError("position 0 ([CLS]) has no prefix to predict from")
    if (select & ~attention_mask.bool()).any():
        raise ValueError("a chosen position is padding")
    return select


def causal_inputs(input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None,
                  select: Tensor, mask_token_id: int, dtype: torch.dtype = torch.float32
                  ) -> CausalInputs:
    """Pack a (B, L) batch and its chosen positions (B, L) bool into one causal pass."""
    batch, length = input_ids.shape
    device = input_ids.device
    am = attention_mask.bool()
    select = _check_select(select, am)
    if token_type_ids is None:
        token_type_ids = torch.zeros_like(input_ids)
    counts = select.sum(1)
    m = max(int(counts.max()) if batch else 0, 1)
    # the chosen positions of each row, ascending, in the first counts[b] slots
    order = torch.sort((~select).to(torch.int8), dim=1, stable=True).indices[:, :m]
    read = torch.arange(m, device=device)[None, :] < counts[:, None]  # (B, M)
    pos = torch.where(read, order, torch.zeros_like(order))

    ids = torch.cat([input_ids, torch.full((batch, m), mask_token_id, device=device,
                                           dtype=input_ids.dtype)], 1)
    real_pos = torch.arange(length, device=device).expand(batch, length)
    position_ids = torch.cat([real_pos, pos], 1)
    types = torch.cat([token_type_ids, token_type_ids.gather(1, pos)], 1)

    k_real = torch.arange(length, device=device)
    allowed = torch.zeros(batch, length + m, length + m, dtype=torch.bool, device=device)
    causal = k_real[None, :] <= k_real[:, None]  # (L, L): key <= query
    allowed[:, :length, :length] = causal[None] & am[:, None, :]
    allowed[:, length:, :length] = (k_real[None, None, :] < pos[:, :, None]) & am[:, None, :]
    allowed[:, length:, length:] = torch.eye(m, dtype=torch.bool, device=device)[None]
    neg = torch.finfo(dtype).min
    mask = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill_(~allowed, neg)
    return CausalInputs(ids, position_ids, types, mask[:, None], read, length)


def truncated_inputs(input_ids: Tensor, token_type_ids: Tensor | None, rows: Tensor,
                     cols: Tensor, mask_token_id: int) -> dict[str, Tensor]:
    """The n sequences [t_0 .. t_{p-1}, MASK] for (row, p) pairs, right-padded to
    max(p) + 1, with their 2-D padding mask (read each at column p)."""
    width = int(cols.max()) + 1
    idx = torch.arange(width, device=input_ids.device)
    ids = input_ids[rows][:, :width]
    ids = torch.where(idx[None] == cols[:, None], torch.full_like(ids, mask_token_id), ids)
    am = (idx[None] <= cols[:, None]).long()
    ids = ids * am  # pads -> 0 ([PAD] in BERT vocabularies; masked anyway)
    tt = (torch.zeros_like(ids) if token_type_ids is None
          else token_type_ids[rows][:, :width] * am)
    return {"input_ids": ids, "attention_mask": am, "token_type_ids": tt}


def causal_mlm_logits(model, input_ids: Tensor, attention_mask: Tensor, select: Tensor,
                      token_type_ids: Tensor | None = None, mode: Mode = "causal_prefix",
                      mask_token_id: int | None = None) -> CausalOutput:
    """Causal MLM logits (n, V) at the positions ``select`` (B, L) bool picks (n of them,
    row-major order). ``model`` is a ``BertMlmClassifier`` (``encode``, ``mlm_logits``,
    ``mask_token_id``). Differentiable; dropout follows ``model.training``."""
    mask_id = model.mask_token_id if mask_token_id is None else mask_token_id
    select = _check_select(select, attention_mask)
    rows, cols = select.nonzero(as_tuple=True)
    targets = input_ids[rows, cols]
    if mode == "causal_prefix":
        dtype = next(model.parameters()).dtype
        packed = causal_inputs(input_ids, attention_mask, token_type_ids, select, mask_id,
                               dtype)
        hidden = model.encode(packed.input_ids, packed.attention_mask, packed.token_type_ids,
                              packed.position_ids).last_hidden_state
        chosen = hidden[:, packed.length:][packed.read]  # (n, H), row-major = select order
    elif mode == "bidirectional_prefix":
        if len(rows) == 0:
            chosen = input_ids.new_zeros((0, model.config.hidden_size), dtype=torch.float32)
        else:
            enc = truncated_inputs(input_ids, token_type_ids, rows, cols, mask_id)
            hidden = model.encode(enc["input_ids"], enc["attention_mask"],
                                  enc["token_type_ids"]).last_hidden_state
            chosen = hidden[torch.arange(len(rows), device=hidden.device), cols]
    else:
        raise ValueError(f"unknown causal mode {mode!r}")
    return CausalOutput(model.mlm_logits(chosen), rows, cols, targets)


def choose_positions(candidates: Tensor, fraction: float | None,
                     generator: torch.Generator | None = None) -> Tensor:
    """Which positions get the IMM term: all ``candidates`` (B, L) bool (non-special,
    non-pad tokens at positions >= 1) when ``fraction`` is None, else each independently
    with probability ``fraction`` (e.g. 0.15 like BERT's MLM selection), at least one a
    row where the row has any candidate."""
    cand = candidates.bool().clone()
    cand[:, 0] = False
    if fraction is None:
        return cand
    u = torch.rand(cand.shape, generator=generator, device=cand.device)
    pick = cand & (u < fraction)
    # rows with candidates but no pick: take the candidate with the smallest draw
    empty = cand.any(1) & ~pick.any(1)
    if empty.any():
        best = torch.where(cand, u, torch.full_like(u, 2.0)).argmin(1)
        pick[empty, best[empty]] = True
    return pick
