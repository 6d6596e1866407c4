"""SiLU: y = x * sigmoid(x)."""
import torch.nn.functional as F

from .common import grads, randn


def cases():
    for name, n, seed in [("n1", 1, 1), ("n37", 37, 2), ("n4099", 4099, 3), ("n40000", 40000, 4)]:
        x = randn(seed, n, scale=3.0).requires_grad_()
        y = F.silu(x)
        dy = randn(seed + 100, n)
        (dx,) = grads(y, [x], dy)
        yield name, {"x": x, "dy": dy, "y": y, "dx": dx}
