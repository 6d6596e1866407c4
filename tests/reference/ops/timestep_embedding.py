"""Sinusoidal timestep embedding: diffusers' get_timestep_embedding (embeddings.py), reproduced
here line for line in float32 (diffusers is not imported), plus the same formula in float64 to show
how far float32 rounding moves it.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

TIMESTEPS = [0, 1, 2, 17, 500, 998, 999]


def get_timestep_embedding(timesteps, embedding_dim, flip_sin_to_cos=False, downscale_freq_shift=1,
                           scale=1, max_period=10000, dtype=torch.float32):
    """diffusers.models.embeddings.get_timestep_embedding; dtype float64 only for the comparison."""
    assert len(timesteps.shape) == 1, "Timesteps should be a 1d-array"
    half_dim = embedding_dim // 2
    exponent = -math.log(max_period) * torch.arange(start=0, end=half_dim, dtype=dtype)
    exponent = exponent / (half_dim - downscale_freq_shift)
    emb = torch.exp(exponent)
    emb = timesteps[:, None].to(dtype) * emb[None, :]
    emb = scale * emb
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half_dim:], emb[:, :half_dim]], dim=-1)
    if embedding_dim % 2 == 1:
        emb = F.pad(emb, (0, 1, 0, 0))
    return emb


def cases():
    t = torch.tensor(TIMESTEPS, dtype=torch.int64)
    settings = [(dim, flip, shift, 1.0, 10000.0) for dim in (128, 32, 33) for flip in (False, True)
                for shift in (1, 0)]
    settings.append((64, True, 1, 2.0, 1000.0))   # non-default scale and max_period
    for dim, flip, shift, scale, max_period in settings:
        name = f"d{dim}_flip{int(flip)}_shift{shift}_scale{scale:g}_period{max_period:g}"
        out = get_timestep_embedding(t, dim, flip, shift, scale, max_period)
        out64 = get_timestep_embedding(t, dim, flip, shift, scale, max_period, dtype=torch.float64)
        yield name, {"t": t.float(), "out": out, "out64": out64,
                     "params": np.array([dim, float(flip), shift, scale, max_period])}
