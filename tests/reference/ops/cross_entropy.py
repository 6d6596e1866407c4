"""Softmax cross-entropy F.cross_entropy(logits, labels) (reduction mean) and its gradient for an
upstream gradient `scale`; also softmax(logits). Logits are rounded to float32 first, so that the
float64 reference sees exactly what the C++ side reads. The loss travels as two float32 parts
(loss_hi + loss_lo), so the double result can be checked beyond float32.
"""
import numpy as np
import torch
import torch.nn.functional as F

from .common import grads, randn


def cases():
    # name, batch, classes, logit scale, offset, upstream scale
    for seed, (name, b, k, spread, offset, scale) in enumerate([
            ("b1_k1", 1, 1, 1.0, 0.0, 1.0),
            ("b3_k5", 3, 5, 1.0, 0.0, 1.0),
            ("b7_k10_wide", 7, 10, 30.0, 0.0, 1.0),         # near one-hot probabilities
            ("b5_k10_offset", 5, 10, 2.0, 1000.0, 1.0),     # exp(logits) alone would overflow
            ("b128_k10_scaled", 128, 10, 3.0, -50.0, 0.25)], start=1):
        logits = (randn(seed, b, k, scale=spread) + offset).float().double().requires_grad_()
        labels = torch.from_numpy(np.random.default_rng(seed + 50).integers(0, k, size=b))
        loss = F.cross_entropy(logits, labels)
        (dlogits,) = grads(loss, [logits], torch.tensor(scale, dtype=torch.float64))
        hi = np.float32(loss.item())
        lo = np.float32(loss.item() - float(hi))
        yield name, {"logits": logits, "labels": labels, "scale": np.array([scale]),
                     "probabilities": torch.softmax(logits, dim=1), "loss_hi": np.array([hi]),
                     "loss_lo": np.array([lo]), "dlogits": dlogits}
