"""Inverted dropout as PyTorch computes it in training mode, in float32 (its semantics are float32:
y = x * (mask * float32(1 / (1 - p)))).

PyTorch cannot replay ddpm.cpp's counter-based mask, so each case carries PyTorch's own mask with
its outputs: the C++ test checks that its y and dx obey the same formula with its own mask (taken
from y != 0; the inputs have no zeros) and agree with PyTorch wherever both masks keep an element.
"""
import numpy as np
import torch
import torch.nn.functional as F

from .common import grads


def no_zeros(seed, n):
    """float32 values with |v| in [0.1, 2.1) and a random sign: no zeros, so y != 0 is the mask."""
    rng = np.random.default_rng(seed)
    v = (0.1 + 2.0 * rng.random(n)) * np.where(rng.random(n) < 0.5, -1.0, 1.0)
    return torch.from_numpy(v).float()


def cases():
    torch.manual_seed(1234)
    for name, n, p, seed in [("n37_p0", 37, 0.0, 1), ("n37_p0.1", 37, 0.1, 2), ("n1000_p0.3", 1000, 0.3, 3),
                             ("n40001_p0.1", 40001, 0.1, 4), ("n40001_p0.5", 40001, 0.5, 5)]:
        p = float(np.float32(p))  # the value the C++ side receives as float
        x = no_zeros(seed, n).requires_grad_()
        y = F.dropout(x, p=p, training=True)
        dy = no_zeros(seed + 100, n)
        (dx,) = grads(y, [x], dy)
        scale = F.dropout(torch.ones(1000), p=p, training=True).max()  # PyTorch's float32 1/(1-p)
        yield name, {"x": x, "dy": dy, "p": np.array([p]), "scale": scale.reshape(1),
                     "y": y, "mask": (y != 0).double(), "dx": dx}
