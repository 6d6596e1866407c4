"""Optimizer kernels over flat buffers, against PyTorch on several parameter tensors (their
concatenation is the flat buffer):

norm_*  torch.linalg.vector_norm in float64 of float32 gradients (norm carried as two float32 parts)
clip_*  torch.nn.utils.clip_grad_norm_ on float32 gradients of two tensors (returned norm, grads)
adam_*  5 steps of clip_grad_norm_ + torch.optim.Adam (float32, single-tensor path) on three
        tensors; max_norm lets clipping trigger on some steps and not on others
ema_*   ema + (1 - decay) * (param - ema) evaluated in float64
Hyperparameters are handed to PyTorch as the float32 values the C++ side uses (0.9f, not 0.9).
"""
import numpy as np
import torch

from .common import randn

SIZES = [(37,), (5, 7), (1000,)]


def f32(x):
    return float(np.float32(x))


def split(flat, sizes):
    out, at = [], 0
    for s in sizes:
        k = int(np.prod(s))
        out.append(flat[at:at + k].reshape(s).clone())
        at += k
    return out


def flat(tensors):
    return torch.cat([t.detach().reshape(-1) for t in tensors])


def hi_lo(x):
    hi = np.float32(x)
    return np.array([hi]), np.array([np.float32(x - float(hi))])


def cases():
    for name, n, seed in [("norm_n37", 37, 1), ("norm_n1000007", 1000007, 2)]:
        grad = randn(seed, n).float()
        norm = torch.linalg.vector_norm(grad.double()).item()
        hi, lo = hi_lo(norm)
        yield name, {"grad": grad, "norm_hi": hi, "norm_lo": lo}

    for name, factor, seed in [("clip_triggers", 0.5, 3), ("clip_idle", 2.0, 4)]:
        grads = split(randn(seed, 72, scale=3.0).float(), SIZES[:2])
        params = [torch.zeros(g.shape, requires_grad=True) for g in grads]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        max_norm = f32(factor * torch.linalg.vector_norm(flat(grads).double()).item())
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        yield name, {"grad": flat(grads), "max_norm": np.array([max_norm]), "norm": norm.reshape(1),
                     "clipped": flat([p.grad for p in params])}

    n = sum(int(np.prod(s)) for s in SIZES)
    scales = [0.5, 3.0, 1.0, 5.0, 0.2]   # grad norms ~16, 98, 33, 164, 6.5 against max_norm 40
    for name, lr, weight_decay, seed in [("adam_plain", 1e-2, 0.0, 10), ("adam_weight_decay", 1e-3, 0.05, 20)]:
        cfg = {"lr": f32(lr), "betas": (f32(0.9), f32(0.999)), "eps": f32(1e-8), "weight_decay": f32(weight_decay)}
        max_norm = 40.0
        param0 = randn(seed, n).float()
        params = [p.requires_grad_() for p in split(param0, SIZES)]
        opt = torch.optim.Adam(params, foreach=False, **cfg)
        grads, norms, history = [], [], []
        for k, s in enumerate(scales):
            g = randn(seed + 1 + k, n, scale=s).float()
            grads.append(g)
            for p, gk in zip(params, split(g, SIZES)):
                p.grad = gk
            norms.append(torch.nn.utils.clip_grad_norm_(params, max_norm).item())
            opt.step()
            history.append(flat(params))
        state = [opt.state[p] for p in params]
        yield name, {"param0": param0, "grads": torch.stack(grads), "norms": np.array(norms),
                     "params": torch.stack(history), "m": flat([s["exp_avg"] for s in state]),
                     "v": flat([s["exp_avg_sq"] for s in state]),
                     "config": np.array([cfg["lr"], cfg["betas"][0], cfg["betas"][1], cfg["eps"],
                                         cfg["weight_decay"], max_norm])}

    for name, decay, seed in [("ema_0.9999", 0.9999, 30), ("ema_0.999", 0.999, 31), ("ema_0.5", 0.5, 32)]:
        decay = f32(decay)
        ema = randn(seed, 1003).float().double()
        param = randn(seed + 1, 1003).float().double()
        yield name, {"ema": ema, "param": param, "decay": np.array([decay]),
                     "expected": ema + (1.0 - decay) * (param - ema)}
