"""Batched matrix product C[b] = alpha * op(A[b]) op(B[b]), op = transpose when flagged.

A is stored [batch, m, k] ([batch, k, m] when transposed), B [batch, k, n] ([batch, n, k]).
config = [transpose_a, transpose_b]; alpha is a 1-element array.
"""
import torch

from .common import grads, randn

SHAPES = [
    # name, batch, m, k, n, alpha
    ("b3_m5k7n3", 3, 5, 7, 3, 0.37),
    ("b2_m64k32n64", 2, 64, 32, 64, 32 ** -0.5),   # attention: positions 64, channels 32
]


def cases():
    seed = 0
    for name, batch, m, k, n, alpha in SHAPES:
        for ta in (0, 1):
            for tb in (0, 1):
                seed += 1
                a = randn(10 * seed + 1, batch, *((k, m) if ta else (m, k))).requires_grad_()
                b = randn(10 * seed + 2, batch, *((n, k) if tb else (k, n))).requires_grad_()
                opa = a.transpose(1, 2) if ta else a
                opb = b.transpose(1, 2) if tb else b
                c = alpha * torch.bmm(opa, opb)
                dc = randn(10 * seed + 3, batch, m, n)
                da, db = grads(c, [a, b], dc)
                yield f"{name}_ta{ta}tb{tb}", {
                    "config": torch.tensor([ta, tb], dtype=torch.int64),
                    "alpha": torch.tensor([alpha], dtype=torch.float64),
                    "a": a, "b": b, "c": c, "dc": dc, "da": da, "db": db,
                }
