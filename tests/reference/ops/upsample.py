"""Nearest x2 upsampling (diffusers Upsample2D: F.interpolate(scale_factor=2, mode="nearest")), NHWC."""
import torch.nn.functional as F

from .common import grads, nhwc, randn

# name, batch, height, width, channels
SHAPES = [
    ("b1_5x7_c3", 1, 5, 7, 3),
    ("b3_5x7_c3", 3, 5, 7, 3),
    ("b2_4x6_c20", 2, 4, 6, 20),
    ("b2_8x8_c64", 2, 8, 8, 64),
    ("b2_16x16_c128", 2, 16, 16, 128),
    ("b1_14x14_c32", 1, 14, 14, 32),
]


def cases():
    for seed, (name, b, h, w, c) in enumerate(SHAPES, start=1):
        x = randn(seed, b, c, h, w).float().double().requires_grad_()
        y = F.interpolate(x, scale_factor=2, mode="nearest")
        dy = randn(seed + 100, b, c, 2 * h, 2 * w).float().double()
        (dx,) = grads(y, [x], dy)
        yield name, {"x": nhwc(x), "dy": nhwc(dy), "y": nhwc(y), "dx": nhwc(dx)}
