"""Scaled softmax over the last dimension: y = softmax(scale * x, dim=-1), x of shape [rows, cols]."""
import torch

from .common import grads, randn

# name, rows, cols, scale, input scale
SHAPES = [
    ("r1_c1", 1, 1, 0.5, 1.0),
    ("r3_c7", 3, 7, 0.7, 2.0),
    ("r5_c17", 5, 17, 1.0, 2.0),
    ("r4_c35_negative_scale", 4, 35, -1.3, 1.5),
    ("r64_c64", 64, 64, 0.125, 4.0),
    ("r49_c49", 49, 49, 0.088388, 3.0),            # 7x7 attention, 128 channels
    ("r256_c256", 256, 256, 0.0625, 6.0),          # 16x16 attention, 256 channels
    ("r200_c1024", 200, 1024, 0.088388, 8.0),      # rows of 32x32 attention
    ("r8_c100_large", 8, 100, 1.0, 60.0),          # exp(60) and beyond overflow fp32 without the max
]


def f32(t):
    """Rounds to float32 and back, so the reference is computed for exactly the C++ inputs."""
    return t.float().double()


def cases():
    for seed, (name, rows, cols, scale, xscale) in enumerate(SHAPES, start=1):
        x = f32(randn(seed, rows, cols, scale=xscale)).requires_grad_()
        scale = float(torch.tensor(scale).float())
        y = torch.softmax(scale * x, dim=-1)
        dy = f32(randn(seed + 100, rows, cols))
        (dx,) = grads(y, [x], dy)
        yield name, {"x": x, "dy": dy, "y": y, "dx": dx, "scale": torch.tensor([scale])}
