"""Helpers shared by the reference modules: seeded inputs and layout changes."""
import numpy as np
import torch


def randn(seed, *shape, scale=1.0):
    """float64 tensor of N(0, scale^2) values from a seeded NumPy generator."""
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.standard_normal(shape) * scale)


def nhwc(t):
    """NCHW -> NHWC (how ddpm.cpp stores activations)."""
    return t.permute(0, 2, 3, 1).contiguous()


def nchw(t):
    """NHWC -> NCHW."""
    return t.permute(0, 3, 1, 2).contiguous()


def grads(output, inputs, grad_output):
    """Gradients of sum(grad_output * output) with respect to each of inputs."""
    return torch.autograd.grad(output, inputs, grad_output)
