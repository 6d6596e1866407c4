"""The classifier of `ddpm eval fd` (include/ddpm/nn/classifier.h), written out in float64 PyTorch
with ddpm.cpp's parameter names and order, for the whole-network test: logits, features and every
parameter gradient of sum(dlogits * logits); the "tiny" case also carries five Adam steps on the
cross-entropy loss.

Each case saves: config ([H, W, C, classes, feature_dim, groups, eps, batch] + widths), x (NHWC),
params (flat, table order), names (ASCII codes, one row per tensor, zero padded), shapes ([rank,
d0, d1, d2, d3] per tensor), dlogits, logits, features, dparams (flat). Inputs and weights are
rounded to float32 first, since that is what the C++ side reads.
"""
import math
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F

from .common import nchw

CONFIGS = {
    # odd, non-square sizes: 13x11 -> 6x5 -> 3x2 under the (0, 1)-padded stride-2 convolutions
    "tiny": dict(H=13, W=11, C=2, classes=5, feature_dim=6, widths=(8, 12, 16), groups=4, eps=1e-5, batch=3),
    # the shipped Fashion-MNIST architecture
    "fmnist": dict(H=28, W=28, C=1, classes=10, feature_dim=128, widths=(32, 64, 128), groups=8, eps=1e-5,
                   batch=2),
}


def conv_specs(c):
    """(in, out, stride) of every convolution, in order."""
    w = c["widths"]
    specs = [(c["C"], w[0], 1)]
    for i in range(1, len(w)):
        specs += [(w[i - 1], w[i], 2), (w[i], w[i], 1)]
    return specs


def param_shapes(c):
    out = []
    for i, (cin, cout, _) in enumerate(conv_specs(c)):
        out += [(f"convs.{i}.weight", (cout, cin, 3, 3)), (f"convs.{i}.bias", (cout,)),
                (f"norms.{i}.weight", (cout,)), (f"norms.{i}.bias", (cout,))]
    out += [("feature_proj.weight", (c["feature_dim"], c["widths"][-1])), ("feature_proj.bias", (c["feature_dim"],)),
            ("head.weight", (c["classes"], c["feature_dim"])), ("head.bias", (c["classes"],))]
    return out


def random_params(c, seed):
    rng = np.random.default_rng(seed)
    P = OrderedDict()
    for name, shape in param_shapes(c):
        if name.startswith("norms."):
            v = rng.standard_normal(shape) * 0.1 + (1.0 if name.endswith(".weight") else 0.0)
        elif len(shape) == 1:
            v = rng.standard_normal(shape) * 0.1
        else:
            v = rng.standard_normal(shape) / math.sqrt(int(np.prod(shape[1:])))
        P[name] = torch.from_numpy(v.astype(np.float32).astype(np.float64)).requires_grad_()
    return P


def classifier(c, P, x):
    """x: NCHW; returns (logits, features)."""
    h = x
    for i, (_, _, stride) in enumerate(conv_specs(c)):
        w, b = P[f"convs.{i}.weight"], P[f"convs.{i}.bias"]
        h = F.conv2d(h, w, b, padding=1) if stride == 1 else F.conv2d(F.pad(h, (0, 1, 0, 1)), w, b, stride=2)
        h = F.silu(F.group_norm(h, c["groups"], P[f"norms.{i}.weight"], P[f"norms.{i}.bias"], c["eps"]))
    features = F.silu(F.linear(h.mean(dim=(2, 3)), P["feature_proj.weight"], P["feature_proj.bias"]))
    return F.linear(features, P["head.weight"], P["head.bias"]), features


def f32(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float32).astype(np.float64))


def flat(tensors):
    return torch.cat([t.detach().reshape(-1) for t in tensors])


def tables(P):
    names = np.zeros((len(P), 64), dtype=np.int64)
    shapes = np.zeros((len(P), 5), dtype=np.int64)
    for i, (name, v) in enumerate(P.items()):
        names[i, :len(name)] = [ord(ch) for ch in name]
        shapes[i, 0] = v.dim()
        shapes[i, 1:1 + v.dim()] = v.shape
    return names, shapes


def cases():
    for seed, (name, c) in enumerate(CONFIGS.items(), start=1):
        rng = np.random.default_rng(100 + seed)
        P = random_params(c, seed)
        b = c["batch"]
        x = f32(rng.uniform(-1.0, 1.0, (b, c["H"], c["W"], c["C"])))
        dlogits = f32(rng.standard_normal((b, c["classes"])))
        logits, features = classifier(c, P, nchw(x))
        dparams = torch.autograd.grad(logits, list(P.values()), dlogits)
        names, shapes = tables(P)
        config = np.array([c["H"], c["W"], c["C"], c["classes"], c["feature_dim"], c["groups"], c["eps"], b]
                          + list(c["widths"]), dtype=np.float64)
        arrays = {"config": config, "x": x, "params": flat(P.values()), "names": names, "shapes": shapes,
                  "dlogits": dlogits, "logits": logits, "features": features, "dparams": flat(dparams)}
        if name == "tiny":
            # Five Adam steps (lr 1e-2, torch defaults otherwise) on the cross-entropy; losses[k] is
            # the loss before step k+1, losses[5] the loss after the fifth step.
            labels = torch.from_numpy(rng.integers(0, c["classes"], size=b))
            opt = torch.optim.Adam(list(P.values()), lr=1e-2, foreach=False)
            losses = []
            for _ in range(5):
                opt.zero_grad()
                loss = F.cross_entropy(classifier(c, P, nchw(x))[0], labels)
                losses.append(loss.item())
                loss.backward()
                opt.step()
            with torch.no_grad():
                losses.append(F.cross_entropy(classifier(c, P, nchw(x))[0], labels).item())
            arrays.update({"labels": labels, "losses": np.array(losses)})
        yield name, arrays
