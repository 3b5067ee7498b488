"""The IMM branch's LSTM stack from token ids (harness/tasks/ptb_lstm/token_lstm.py) equals
``LstmLm.hidden(..., dropout=False)`` and its gradients within float rounding (the sums run
in another order than oneDNN's fused LSTM): from a zero or a carried state, all steps or
the last, one to three layers, an embedding size other than the hidden size, tied weights."""

from __future__ import annotations

import pytest
import torch

from harness.tasks.ptb_lstm.model import LstmLm
from harness.tasks.ptb_lstm.token_lstm import stack_outputs


def close(new, old, what):
    torch.testing.assert_close(new, old, rtol=2e-4, atol=2e-6, msg=lambda m: f"{what}: {m}")


@pytest.mark.parametrize("layers,emb,tie", [(1, 6, False), (2, 6, True), (3, 5, False)])
@pytest.mark.parametrize("carried", [False, True])
@pytest.mark.parametrize("last_only", [False, True])
def test_stack_equals_the_models_forward_and_gradients(layers, emb, tie, carried, last_only):
    torch.manual_seed(0)
    hidden = emb if tie else 6
    model = LstmLm(13, emb, hidden, layers, 0.5, 0.5, tie_weights=tie)
    params = list(model.parameters())
    gen = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, 13, (7, 9), generator=gen)
    tokens[:, 0] = tokens[0, 0]  # repeated tokens, so the per-token sums add up rows
    state = None
    if carried:
        _, state = model.hidden(torch.randint(0, 13, (7, 4), generator=gen), None, False)
        state = [(h.detach(), c.detach()) for h, c in state]
    ref, _ = model.hidden(tokens, state, dropout=False)
    ref = ref[:, -1] if last_only else ref
    new = stack_outputs(model, tokens, state, last_only=last_only)
    close(new, ref, "outputs")
    upstream = torch.randn(ref.shape[:-1] + (13,), generator=gen)
    want = torch.autograd.grad(model.decoder(ref), params, upstream)
    got = torch.autograd.grad(model.decoder(new), params, upstream)
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        close(a, b, f"gradient {i}")
