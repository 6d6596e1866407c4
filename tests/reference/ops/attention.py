"""Single-head self-attention with residual (diffusers Attention, heads=1), tokens [B, HW, C]."""
import math

import torch

from .common import grads, randn


def attention(x, residual, p, c):
    """p: flat [Wq, bq, Wk, bk, Wv, bv, Wo, bo] (ddpm.cpp's layout of diffusers' to_q ... to_out.0)."""
    size = c * c + c
    w = [p[i * size:i * size + c * c].reshape(c, c) for i in range(4)]
    b = [p[i * size + c * c:(i + 1) * size] for i in range(4)]
    q, k, v = (x @ w[i].T + b[i] for i in range(3))
    probs = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(c), dim=-1)
    return residual + (probs @ v) @ w[3].T + b[3]


def cases():
    for name, (b, n, c), seed in [("b1_p35_c3", (1, 35, 3), 1), ("b3_p6_c8", (3, 6, 8), 2),
                                   ("b2_p49_c64", (2, 49, 64), 3), ("b2_p256_c32", (2, 256, 32), 4)]:
        x = randn(seed, b, n, c).requires_grad_()
        residual = randn(seed + 1, b, n, c).requires_grad_()
        p = randn(seed + 2, 4 * (c * c + c), scale=1.0 / math.sqrt(c)).requires_grad_()
        y = attention(x, residual, p, c)
        dy = randn(seed + 3, b, n, c)
        dx, dres, dp = grads(y, [x, residual, p], dy)
        yield name, {"x": x, "residual": residual, "params": p, "dy": dy, "y": y, "dx": dx,
                     "dresidual": dres, "dparams": dp}
