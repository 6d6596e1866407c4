"""MSE loss (L_simple): F.mse_loss(prediction, target) with mean reduction, and its gradient for
an upstream gradient `scale`. Inputs are rounded to float32 first, so that the float64 reference
sees exactly what the C++ side reads.
"""
import numpy as np
import torch
import torch.nn.functional as F

from .common import grads, randn


def cases():
    for name, shape, scale, seed in [("b1_5x7x3", (1, 5, 7, 3), 1.0, 1), ("b3_5x7x3", (3, 5, 7, 3), 1.0, 2),
                                     ("b8_32x32x3_scaled", (8, 32, 32, 3), 0.25, 3), ("n1", (1,), 1.0, 4)]:
        prediction = randn(seed, *shape).float().double().requires_grad_()
        target = randn(seed + 50, *shape).float().double()
        loss = F.mse_loss(prediction, target)
        (dprediction,) = grads(loss, [prediction], torch.tensor(scale, dtype=torch.float64))
        # the loss in two float32 parts, so the double result can be checked beyond float32
        hi = np.float32(loss.item())
        lo = np.float32(loss.item() - float(hi))
        yield name, {"prediction": prediction, "target": target, "scale": np.array([scale]),
                     "loss_hi": np.array([hi]), "loss_lo": np.array([lo]), "dprediction": dprediction}
