"""Channel concatenation torch.cat([a, b], dim=1) (the U-Net's skip connections), NHWC."""
import torch

from .common import grads, nhwc, randn

# name, batch, height, width, channels of a, channels of b
SHAPES = [
    ("b1_5x7_3_5", 1, 5, 7, 3, 5),
    ("b3_5x7_3_1", 3, 5, 7, 3, 1),
    ("b2_8x8_64_64", 2, 8, 8, 64, 64),
    ("b2_16x16_128_256", 2, 16, 16, 128, 256),
    ("b2_16x16_256_128", 2, 16, 16, 256, 128),
    ("b1_28x28_32_17", 1, 28, 28, 32, 17),
]


def cases():
    for seed, (name, n, h, w, ca, cb) in enumerate(SHAPES, start=1):
        a = randn(seed, n, ca, h, w).float().double().requires_grad_()
        b = randn(seed + 100, n, cb, h, w).float().double().requires_grad_()
        y = torch.cat([a, b], dim=1)
        dy = randn(seed + 200, n, ca + cb, h, w).float().double()
        da, db = grads(y, [a, b], dy)
        yield name, {"a": nhwc(a), "b": nhwc(b), "dy": nhwc(dy), "y": nhwc(y), "da": nhwc(da), "db": nhwc(db)}
