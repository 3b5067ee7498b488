"""The model's LSTM stack without dropout, run from token ids on the CPU as one autograd
function that leaves out the first layer's per-position input products.

The IMM branch runs the stack without dropout over token windows (sampled IMM's k
windows, the single-sample term's own contexts). Without dropout the first layer's input
projection ``W_ih e(x) + b`` depends on the token alone, and a k-sample step's ~12,000
window positions hold a few thousand distinct tokens, so it is formed once per distinct
token and gathered; in the backward the gate gradients are summed per distinct token
first, so that the first layer's input-side gradients (``W_ih``, the embedding rows) come
from a (distinct tokens x 4H) matrix instead of one row per position. That leaves out
three of the first layer's four products per position (about a quarter of the stack's
arithmetic), which oneDNN's fused LSTM (what ``nn.LSTM`` runs on the CPU) cannot.

How the rest is laid out, for speed at these shapes (one thread, a few hundred rows):
- a layer above the first reads [x_t, h_{t-1}] as one row of a buffer Z (T + 1, N, I + H)
  and multiplies it by [W_ih, W_hh] once per step; its weight gradient is one product over
  all steps (dG^T Z), and in the backward one product per step gives both the gradient of
  its input x_t and of h_{t-1};
- the forward keeps, per step, the products the backward needs (``_cell_forward``), so
  that a backward step is a matrix product and seven element-wise kernels.

The arithmetic is the LSTM's (PyTorch's gate order i, f, g, o; both biases), with sums in
another order than oneDNN's: equal to ``LstmLm.hidden(tokens, state, dropout=False)``
within float rounding (tests/test_ptb_exact.py, tests/test_ptb_lstm.py). Gradients flow
to the parameters only: an initial state, when given, is the trainer's detached carried
state. On other devices ``stack_outputs`` is ``LstmLm.hidden`` itself (cuDNN's fused
LSTM).
"""

from __future__ import annotations

import torch
from torch import Tensor

from harness.tasks.ptb_lstm.model import LstmLm, State


def _cell_forward(a: Tensor, c_prev: Tensor | None, h_out: Tensor, keep_f: Tensor,
                  keep_q: Tensor) -> Tensor:
    """One step of one layer from its gate pre-activations ``a`` (N, 4H), in place.

    Writes h into ``h_out``, f into ``keep_f``, q = o (1 - tanh(c)^2) into ``keep_q``, and
    overwrites ``a`` with the factors of the gate gradients (times dc for i, f and g,
    times dh for o): g i (1 - i), c_prev f (1 - f), i (1 - g^2), tanh(c) o (1 - o),
    each formed from products the step computes anyway (e.g. tanh(c) o (1 - o) = h - h o).
    Returns the cell c (N, H)."""
    size = a.shape[1] // 4
    a[:, :2 * size].sigmoid_()
    a[:, 2 * size:3 * size].tanh_()
    a[:, 3 * size:].sigmoid_()
    i, f, g, o = (a[:, j * size:(j + 1) * size] for j in range(4))
    ig = i * g
    keep_f.copy_(f)
    if c_prev is None:
        c = ig
        f.zero_()
    else:
        fc = f * c_prev
        c = fc + ig
        torch.addcmul(fc, fc, f, value=-1.0, out=f)
    tc = torch.tanh(c)
    h = torch.mul(o, tc, out=h_out)
    torch.addcmul(o, h, tc, value=-1.0, out=keep_q)
    torch.addcmul(h, h, o, value=-1.0, out=o)
    torch.addcmul(i, ig, g, value=-1.0, out=g)
    torch.addcmul(ig, ig, i, value=-1.0, out=i)
    return c


def _cell_backward(a: Tensor, dh: Tensor, dc: Tensor | None, f_next: Tensor | None,
                   q: Tensor) -> Tensor:
    """One backward step: turns the factors in ``a`` into the gate pre-activation
    gradients (in place) and returns dc. ``f_next``: the next step's forget gate (None at
    the last step)."""
    size = a.shape[1] // 4
    if dc is None:
        dc = dh * q
    else:
        dc = dc.mul_(f_next).addcmul_(dh, q)
    a[:, :3 * size].view(a.shape[0], 3, size).mul_(dc[:, None])
    a[:, 3 * size:].mul_(dh)
    return dc


class _Stack(torch.autograd.Function):
    """The stack over (T, N) token ids; outputs (T, N, H), or the last step's (N, H)."""

    @staticmethod
    def forward(ctx, tokens: Tensor, state: State | None, last_only: bool, embedding: Tensor,
                *weights: Tensor) -> Tensor:
        layers = len(weights) // 4
        steps, rows = tokens.shape
        size = weights[1].shape[1]
        distinct, inverse = torch.unique(tokens.reshape(-1), return_inverse=True)
        inverse = inverse.view(steps, rows)
        w_ih, w_hh, b_ih, b_hh = weights[:4]
        table = torch.addmm(b_ih + b_hh, embedding.index_select(0, distinct), w_ih.t())
        new = embedding.new_empty
        # Z of each layer above the first: row t = [x_t, h_{t-1}]; the first layer's
        # outputs are the input part of the second's Z (or a buffer of their own).
        zs: list[Tensor | None] = [None] + [
            new(steps + 1, rows, size + size) for _ in range(1, layers)]
        outs: list[Tensor] = []
        for layer in range(layers):
            z = zs[layer]
            if z is not None:
                outs.append(z[1:, :, size:])
            elif layers > 1:
                outs.append(zs[1][:steps, :, :size])  # type: ignore[index]
            else:
                outs.append(new(steps, rows, size))
        for layer in range(1, layers):
            z = zs[layer]
            h0 = None if state is None else state[layer][0][0]
            if h0 is None:
                z[0, :, size:].zero_()  # type: ignore[index]
            else:
                z[0, :, size:].copy_(h0)  # type: ignore[index]
        gates = [new(steps, rows, 4 * size) for _ in range(layers)]
        keep_f = [new(steps, rows, size) for _ in range(layers)]
        keep_q = [new(steps, rows, size) for _ in range(layers)]
        w_hh_t = weights[1].t()
        cat = [None] + [torch.cat([weights[4 * j], weights[4 * j + 1]], 1).t()
                        for j in range(1, layers)]
        bias = [None] + [weights[4 * j + 2] + weights[4 * j + 3] for j in range(1, layers)]
        cells: list[Tensor | None] = [None if state is None else state[j][1][0]
                                      for j in range(layers)]
        h_first = None if state is None else state[0][0][0]
        for t in range(steps):
            for layer in range(layers):
                a = gates[layer][t]
                if layer == 0:
                    torch.index_select(table, 0, inverse[t], out=a)
                    h_prev = outs[0][t - 1] if t else h_first
                    if h_prev is not None:
                        a.addmm_(h_prev, w_hh_t)
                else:
                    torch.addmm(bias[layer], zs[layer][t], cat[layer], out=a)  # type: ignore[index]
                cells[layer] = _cell_forward(a, cells[layer], outs[layer][t],
                                             keep_f[layer][t], keep_q[layer][t])
                if 0 < layer < layers - 1:
                    zs[layer + 1][t, :, :size].copy_(outs[layer][t])  # type: ignore[index]
        ctx.saved = (tokens.shape, distinct, inverse, table, zs, outs, gates, keep_f, keep_q)
        ctx.last_only, ctx.state, ctx.embedding, ctx.weights = last_only, state, embedding, weights
        top = outs[-1]
        return top[-1].clone() if last_only else top.clone()

    @staticmethod
    def backward(ctx, grad: Tensor):
        (steps, rows), distinct, inverse, _, zs, outs, gates, keep_f, keep_q = ctx.saved
        weights, state = ctx.weights, ctx.state
        layers = len(weights) // 4
        size = weights[1].shape[1]
        grads: list[Tensor | None] = [None] * len(weights)
        d_out: Tensor | None = None if ctx.last_only else grad
        d_last: Tensor | None = grad if ctx.last_only else None
        for layer in reversed(range(layers)):
            acts, fs, qs = gates[layer], keep_f[layer], keep_q[layer]
            z = zs[layer]
            d_z = None if z is None else acts.new_empty(steps, rows, z.shape[-1])
            w = weights[4 * layer + 1] if z is None else torch.cat(
                [weights[4 * layer], weights[4 * layer + 1]], 1)
            dc = None
            for t in reversed(range(steps)):
                if t == steps - 1:
                    dh = d_last if d_out is None else d_out[t]
                else:
                    if d_z is None:
                        dh = (torch.mm(acts[t + 1], w) if d_out is None
                              else torch.addmm(d_out[t], acts[t + 1], w))
                    else:
                        rec = d_z[t + 1, :, -size:]
                        dh = rec if d_out is None else rec + d_out[t]
                assert dh is not None
                dc = _cell_backward(acts[t], dh, dc, fs[t + 1] if t + 1 < steps else None,
                                    qs[t])
                if d_z is not None:
                    torch.mm(acts[t], w, out=d_z[t])
            flat = acts.view(steps * rows, -1)
            if z is not None:
                d_cat = flat.t() @ z[:steps].reshape(steps * rows, -1)
                in_size = z.shape[-1] - size
                grads[4 * layer] = d_cat[:, :in_size].contiguous()
                grads[4 * layer + 1] = d_cat[:, in_size:].contiguous()
                d_bias = torch.mv(flat.t(), flat.new_ones(steps * rows))
                grads[4 * layer + 2], grads[4 * layer + 3] = d_bias, d_bias.clone()
                d_out, d_last = d_z[:, :, :in_size], None  # type: ignore[index]
            else:
                previous = outs[0][:-1].reshape((steps - 1) * rows, size)
                d_w_hh = acts[1:].reshape(-1, 4 * size).t() @ previous
                if state is not None:
                    d_w_hh.addmm_(acts[0].t(), state[0][0][0])
                per_token = flat.new_zeros(len(distinct), 4 * size).index_add_(
                    0, inverse.reshape(-1), flat)
                grads[0] = per_token.t() @ ctx.embedding.index_select(0, distinct)
                grads[1] = d_w_hh
                d_bias = per_token.sum(0)
                grads[2], grads[3] = d_bias, d_bias.clone()
                d_embedding = torch.zeros_like(ctx.embedding).index_add_(
                    0, distinct, per_token @ weights[0])
        ctx.saved = None
        return (None, None, None, d_embedding, *grads)


def _weights(model: LstmLm) -> list[Tensor]:
    out: list[Tensor] = []
    for rnn in model.rnns:
        out += [rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0]
    return out


def stack_outputs(model: LstmLm, tokens: Tensor, state: State | None = None,
                  last_only: bool = False) -> Tensor:
    """Top-layer outputs of the stack without dropout over ``tokens`` (N, T) from
    ``state`` (None: zeros; a given state gets no gradient): (N, T, H), or the last
    step's (N, H) with ``last_only``. Differentiable over the model's parameters."""
    if tokens.device.type != "cpu":
        hidden, _ = model.hidden(tokens, state, dropout=False)
        return hidden[:, -1] if last_only else hidden
    if state is not None:
        state = [(h.detach(), c.detach()) for h, c in state]
    out = _Stack.apply(tokens.t(), state, last_only, model.encoder.weight, *_weights(model))
    return out if last_only else out.transpose(0, 1)
