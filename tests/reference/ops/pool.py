"""Global average pooling x.mean(dim=(2, 3)) (NCHW) -> [N, C]; x stored NHWC as [N, H, W, C].
Inputs are rounded to float32 first, so that the float64 reference sees what the C++ side reads.
"""
from .common import grads, nchw, randn


def cases():
    # name, batch, height, width, channels
    for seed, (name, n, h, w, c) in enumerate([("b1_1x1_c1", 1, 1, 1, 1), ("b3_5x7_c3", 3, 5, 7, 3),
                                               ("b2_7x7_c128", 2, 7, 7, 128), ("b5_3x5_c37", 5, 3, 5, 37),
                                               ("b4_28x28_c32", 4, 28, 28, 32)], start=1):
        x = nchw(randn(seed, n, h, w, c).float().double()).requires_grad_()
        y = x.mean(dim=(2, 3))
        dy = randn(seed + 100, n, c).float().double()
        (dx,) = grads(y, [x], dy)
        yield name, {"x": x.permute(0, 2, 3, 1), "dy": dy, "y": y, "dx": dx.permute(0, 2, 3, 1)}
