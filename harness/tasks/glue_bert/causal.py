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

``packed_causal_logits`` is the ``"causal_prefix"`` view packed for many sentences with
few chosen positions each (the IMM samples, a batch's regularised positions): a sentence
contributes only its needed prefix and its mask copies, and such segments share rows
(block-diagonal attention, position ids restarting per segment), so no pass pays for
padding to the longest sentence.

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
        dtype = getattr(model, "amp_dtype", None) or next(model.parameters()).dtype
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


def pack_segments(lengths: list[int], capacity: int) -> tuple[list[int], list[int], int]:
    """First-fit decreasing: (row, offset) of each segment in rows of ``capacity`` slots,
    and the number of rows."""
    free: list[int] = []
    row = [0] * len(lengths)
    offset = [0] * len(lengths)
    for g in sorted(range(len(lengths)), key=lambda g: -lengths[g]):
        r = next((i for i, room in enumerate(free) if room >= lengths[g]), len(free))
        if r == len(free):
            free.append(capacity)
        row[g], offset[g] = r, capacity - free[r]
        free[r] -= lengths[g]
    return row, offset, len(free)


def packed_causal_logits(model, input_ids: Tensor, token_type_ids: Tensor | None,
                         rows: Tensor, cols: Tensor, mask_token_id: int | None = None
                         ) -> Tensor:
    """The ``causal_prefix`` logits (n, V) at positions (rows[i], cols[i]) of a (B, L)
    batch, distinct and in row-major order, from one PACKED pass: each sentence becomes a
    segment of its needed prefix (tokens 0 .. max col - 1) followed by one [MASK] copy per
    chosen position, and segments are packed, first-fit decreasing, into rows as long as
    the longest segment. Attention stays inside a segment (real tokens causal, a copy sees
    the real tokens before its position and itself) and position ids restart per segment,
    so each prediction equals ``causal_mlm_logits``'s; the pass holds no padding beyond the
    rows' leftover slots (a sentence's tokens after its last chosen position, and the pad
    columns of short rows, are not computed)."""
    device = input_ids.device
    mask_id = model.mask_token_id if mask_token_id is None else mask_token_id
    if token_type_ids is None:
        token_type_ids = torch.zeros_like(input_ids)
    n = len(rows)
    if n == 0:
        return torch.zeros(0, model.config.vocab_size, device=device)
    if bool((cols < 1).any()):
        raise ValueError("position 0 ([CLS]) has no prefix to predict from")
    key = rows * input_ids.shape[1] + cols
    if n > 1 and not bool((key[1:] > key[:-1]).all()):
        raise ValueError("positions must be distinct and in row-major order")
    sents, seg = torch.unique_consecutive(rows, return_inverse=True)
    groups = len(sents)
    prefix = torch.zeros(groups, dtype=torch.long, device=device).scatter_reduce_(
        0, seg, cols, "amax", include_self=False)
    count = torch.bincount(seg, minlength=groups)
    lengths = (prefix + count).tolist()
    capacity = max(lengths)
    row_of, off_of, n_rows = pack_segments(lengths, capacity)
    start = (torch.tensor(row_of, device=device) * capacity
             + torch.tensor(off_of, device=device))  # first slot of each segment

    # real tokens: segment g holds t_0 .. t_{prefix_g - 1} of sentence sents[g]
    g_real = torch.repeat_interleave(torch.arange(groups, device=device), prefix)
    first_real = torch.cumsum(prefix, 0) - prefix
    j = torch.arange(len(g_real), device=device) - first_real[g_real]
    slot_real = start[g_real] + j
    # copies: one per chosen position, after its segment's real tokens
    first_item = torch.cumsum(count, 0) - count
    rank = torch.arange(n, device=device) - first_item[seg]
    slot_copy = start[seg] + prefix[seg] + rank

    total = n_rows * capacity
    ids = torch.zeros(total, dtype=input_ids.dtype, device=device)
    pos = torch.zeros(total, dtype=torch.long, device=device)
    types = torch.zeros(total, dtype=token_type_ids.dtype, device=device)
    segment = torch.full((total,), -1, dtype=torch.long, device=device)
    copy = torch.zeros(total, dtype=torch.bool, device=device)
    ids[slot_real] = input_ids[sents[g_real], j]
    pos[slot_real] = j
    types[slot_real] = token_type_ids[sents[g_real], j]
    segment[slot_real] = g_real
    ids[slot_copy] = mask_id
    pos[slot_copy] = cols
    types[slot_copy] = token_type_ids[rows, cols]
    segment[slot_copy] = seg
    copy[slot_copy] = True

    shape = (n_rows, capacity)
    ids, pos, types = ids.view(shape), pos.view(shape), types.view(shape)
    segment, copy = segment.view(shape), copy.view(shape)
    same = (segment[:, :, None] == segment[:, None, :]) & (segment[:, :, None] >= 0)
    key_real = ~copy[:, None, :]
    pq, pk = pos[:, :, None], pos[:, None, :]
    rule = torch.where(copy[:, :, None], pk < pq, pk <= pq)
    allowed = same & key_real & rule
    allowed |= torch.eye(capacity, dtype=torch.bool, device=device)[None]
    dtype = getattr(model, "amp_dtype", None) or next(model.parameters()).dtype
    mask = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill_(
        ~allowed, torch.finfo(dtype).min)
    hidden = model.encode(ids, mask[:, None], types, pos).last_hidden_state
    return model.mlm_logits(hidden.reshape(total, -1)[slot_copy])


def choose_positions(candidates: Tensor, fraction: float | None,
                     generator: torch.Generator | None = None, limit: int | None = None
                     ) -> Tensor:
    """Which positions get the IMM term: all ``candidates`` (B, L) bool (non-special,
    non-pad tokens at positions >= 1) when ``fraction`` is None, else each independently
    with probability ``fraction`` (e.g. 0.15 like BERT's MLM selection), at least one a
    row where the row has any candidate; with ``limit``, at most that many a row (those
    with the smallest draws, so a cap keeps a subset of the uncapped choice)."""
    cand = candidates.bool().clone()
    cand[:, 0] = False
    if fraction is None and limit is None:
        return cand
    u = torch.rand(cand.shape, generator=generator, device=cand.device)
    pick = cand & (u < fraction) if fraction is not None else cand
    # rows with candidates but no pick: take the candidate with the smallest draw
    empty = cand.any(1) & ~pick.any(1)
    if empty.any():
        best = torch.where(cand, u, torch.full_like(u, 2.0)).argmin(1)
        pick[empty, best[empty]] = True
    if limit is not None:
        rank = torch.where(pick, u, torch.full_like(u, 2.0)).argsort(1).argsort(1)
        pick &= rank < limit
    return pick
