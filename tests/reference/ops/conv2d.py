"""2-D convolution with explicit (before, after) padding, as diffusers' conv layers use it.

pad (1, 1) for the 3x3 stride-1 convs, (0, 1) for Downsample2D's 3x3 stride-2 conv (diffusers
pads with F.pad(x, (0, 1, 0, 1)) and convolves without padding), (0, 0) for the 1x1 shortcut.
config = [kernel, stride, pad_before, pad_after].
"""
import torch
import torch.nn.functional as F

from .common import grads, nhwc, randn


def conv(x, w, b, stride, pad_before, pad_after):
    return F.conv2d(F.pad(x, (pad_before, pad_after, pad_before, pad_after)), w, b, stride=stride)


CASES = [
    # name, N, H, W, Cin, Cout, kernel, stride, pad_before, pad_after
    ("k3s1_n3_5x7_3to4", 3, 5, 7, 3, 4, 3, 1, 1, 1),
    ("k3s2_n3_5x7_3to4", 3, 5, 7, 3, 4, 3, 2, 0, 1),
    ("k3s2_n1_6x8_3to4", 1, 6, 8, 3, 4, 3, 2, 0, 1),
    ("k1_n3_5x7_3to4", 3, 5, 7, 3, 4, 1, 1, 0, 0),
    ("k3s1_n2_12x10_32to48", 2, 12, 10, 32, 48, 3, 1, 1, 1),
    ("k3s2_n2_16x16_64to64", 2, 16, 16, 64, 64, 3, 2, 0, 1),
    ("k1_n2_9x9_64to128", 2, 9, 9, 64, 128, 1, 1, 0, 0),
]


def cases():
    for seed, (name, n, h, w, cin, cout, k, s, pb, pa) in enumerate(CASES):
        x = randn(10 * seed + 1, n, cin, h, w).requires_grad_()
        weight = randn(10 * seed + 2, cout, cin, k, k, scale=(cin * k * k) ** -0.5).requires_grad_()
        bias = randn(10 * seed + 3, cout).requires_grad_()
        y = conv(x, weight, bias, s, pb, pa)
        dy = randn(10 * seed + 4, *y.shape)
        dx, dweight, dbias = grads(y, [x, weight, bias], dy)
        yield name, {
            "config": torch.tensor([k, s, pb, pa], dtype=torch.int64),
            "x": nhwc(x), "weight": weight, "bias": bias,
            "y": nhwc(y), "dy": nhwc(dy),
            "dx": nhwc(dx), "dweight": dweight, "dbias": dbias,
        }
