"""Linear layer: y = x W^T + b with W [out, in] (PyTorch's layout)."""
import torch.nn.functional as F

from .common import grads, randn

CASES = [
    # name, rows, in, out
    ("r1_3to4", 1, 3, 4),
    ("r5_37to19", 5, 37, 19),
    ("r16_128to512", 16, 128, 512),   # timestep embedding MLP
    ("r300_64to64", 300, 64, 64),     # attention projections (batch * positions rows)
]


def cases():
    for seed, (name, rows, fin, fout) in enumerate(CASES):
        x = randn(10 * seed + 1, rows, fin).requires_grad_()
        weight = randn(10 * seed + 2, fout, fin, scale=fin ** -0.5).requires_grad_()
        bias = randn(10 * seed + 3, fout).requires_grad_()
        y = F.linear(x, weight, bias)
        dy = randn(10 * seed + 4, rows, fout)
        dx, dweight, dbias = grads(y, [x, weight, bias], dy)
        yield name, {"x": x, "weight": weight, "bias": bias, "y": y, "dy": dy,
                     "dx": dx, "dweight": dweight, "dbias": dbias}
