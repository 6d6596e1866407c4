"""Group norm with affine, optionally followed by SiLU (torch F.group_norm, F.silu), NHWC arrays.

Each case also carries the saved statistics (mean, rstd per [batch, group]) and its shape
parameters (groups, eps, silu) as one-element arrays.
"""
import torch
import torch.nn.functional as F

from .common import grads, nhwc, randn

# name, batch, height, width, channels, groups, silu, offset
SHAPES = [
    ("b1_5x7_c3_g1", 1, 5, 7, 3, 1, False, 0.0),
    ("b1_5x7_c3_g1_silu", 1, 5, 7, 3, 1, True, 0.0),
    ("b3_5x7_c6_g3", 3, 5, 7, 6, 3, False, 0.0),
    ("b3_5x7_c6_g3_silu", 3, 5, 7, 6, 3, True, 0.0),
    ("b3_5x7_c6_g6_silu", 3, 5, 7, 6, 6, True, 0.0),
    ("b2_9x9_c40_g8_silu", 2, 9, 9, 40, 8, True, 0.0),       # 5 channels per group, vector tail
    ("b2_6x6_c96_g32", 2, 6, 6, 96, 32, False, 0.0),        # 3 per group, groups straddle vectors
    ("b1_11x13_c64_g32_silu", 1, 11, 13, 64, 32, True, 0.0),
    ("b2_16x16_c256_g32", 2, 16, 16, 256, 32, False, 0.0),
    ("b2_16x16_c256_g32_silu", 2, 16, 16, 256, 32, True, 0.0),
    ("b1_28x28_c32_g32_silu", 1, 28, 28, 32, 32, True, 0.0),
    ("b3_28x28_c32_g32", 3, 28, 28, 32, 32, False, 0.0),
    ("b1_48x48_c64_g32_silu", 1, 48, 48, 64, 32, True, 0.0),  # one sample, many chunks
    ("b5_32x32_c64_g16_silu", 5, 32, 32, 64, 16, True, 0.0),  # several steps, a partial last one
    ("b2_8x8_c64_g32_offset100", 2, 8, 8, 64, 32, False, 100.0),
    ("b2_8x8_c64_g32_offset100_silu", 2, 8, 8, 64, 32, True, 100.0),
]
EPS = 1e-5


def f32(t):
    """Rounds to float32 and back, so the reference is computed for exactly the C++ inputs."""
    return t.float().double()


def cases():
    for seed, (name, b, h, w, c, g, silu, offset) in enumerate(SHAPES, start=1):
        x = f32(randn(seed, b, c, h, w, scale=1.5) + offset).requires_grad_()
        gamma = f32(1.0 + 0.5 * randn(seed + 100, c)).requires_grad_()
        beta = f32(0.5 * randn(seed + 200, c)).requires_grad_()
        dy = f32(randn(seed + 300, b, c, h, w))
        v = F.group_norm(x, g, gamma, beta, eps=EPS)
        y = F.silu(v) if silu else v
        dx, dgamma, dbeta = grads(y, [x, gamma, beta], dy)
        xg = x.detach().reshape(b, g, -1)
        mean = xg.mean(dim=2)
        rstd = 1.0 / torch.sqrt(xg.var(dim=2, unbiased=False) + EPS)
        yield name, {
            "x": nhwc(x), "gamma": gamma, "beta": beta, "dy": nhwc(dy),
            "y": nhwc(y), "dx": nhwc(dx), "dgamma": dgamma, "dbeta": dbeta,
            "mean": mean, "rstd": rstd,
            "groups": torch.tensor([g]), "eps": torch.tensor([EPS]), "silu": torch.tensor([int(silu)]),
        }
