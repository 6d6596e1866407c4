"""Elementwise add, and the ResNet block's broadcast add of the time-embedding projection.

Cases named add_* hold a, b, dy -> y, da, db (y = a + b); cases named bias_* hold x (NHWC), bias
[N, C], dy -> y = x + bias[:, :, None, None] (NHWC) and dbias.
"""
from .common import grads, nchw, nhwc, randn


def f32(t):
    """Rounds to float32 values (kept float64), so that the reference sees exactly the inputs the
    C++ side reads: a float64 sum of unrounded inputs would differ by an input rounding error
    magnified by cancellation."""
    return t.float().double()


def cases():
    for name, n, seed in [("add_n1", 1, 1), ("add_n37", 37, 2), ("add_n40001", 40001, 3)]:
        a = f32(randn(seed, n)).requires_grad_()
        b = f32(randn(seed + 50, n, scale=2.0)).requires_grad_()
        y = a + b
        dy = f32(randn(seed + 100, n))
        da, db = grads(y, [a, b], dy)
        yield name, {"a": a, "b": b, "dy": dy, "y": y, "da": da, "db": db}

    for name, (n, h, w, c), seed in [("bias_b1_5x7x3", (1, 5, 7, 3), 10), ("bias_b3_5x7x3", (3, 5, 7, 3), 11),
                                     ("bias_b2_16x16x300", (2, 16, 16, 300), 12)]:
        x = f32(nchw(randn(seed, n, h, w, c))).requires_grad_()   # NCHW for torch, stored NHWC
        bias = f32(randn(seed + 50, n, c)).requires_grad_()
        y = x + bias[:, :, None, None]
        dy = f32(nchw(randn(seed + 100, n, h, w, c)))
        dx, dbias = grads(y, [x, bias], dy)
        yield name, {"x": nhwc(x), "bias": bias, "dy": nhwc(dy), "y": nhwc(y), "dx": nhwc(dx), "dbias": dbias}
