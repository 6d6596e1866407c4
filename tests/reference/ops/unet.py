"""diffusers' UNet2DModel (facts §5.3), written out in float64 with diffusers' state-dict names and
registration order (diffusers itself is not imported), for the whole-network test of ddpm.cpp's
UNet2D: output, every parameter gradient, and five Adam steps.

Each case saves: x, timesteps, params (flat, state-dict order), d_eps, eps, dparams (flat), names
(ASCII codes, one row per tensor, zero padded) and shapes ([rank, d0, d1, d2, d3] per tensor);
adam cases also noise and losses (the MSE before each of five steps, and after the last).
Inputs and weights are rounded to float32 first, since that is what the C++ side reads.
"""
import math
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F

from .common import nchw, nhwc


CONFIGS = {
    # 28x28 like Fashion-MNIST: 28 -> 14 -> 7, attention at 14, downsample_padding 0 (pad (0,1)).
    "sq28": dict(H=28, W=28, cin=1, cout=1, ch=(8, 16, 16), layers=1, groups=4, eps=1e-6,
                 down=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
                 up=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"), pad=0, flip=False, shift=1.0, batch=2,
                 t=[3.0, 811.0]),
    # Non-square, two resnets per down block, attention at both ends, padding 1, flipped sin/cos;
    # class-conditional (num_class_embeds 5; two images of class 2 test the table's summed gradient).
    "rect8x12": dict(H=8, W=12, cin=3, cout=2, ch=(8, 16), layers=2, groups=4, eps=1e-5,
                     down=("AttnDownBlock2D", "DownBlock2D"), up=("UpBlock2D", "AttnUpBlock2D"), pad=1,
                     flip=True, shift=0.0, batch=3, t=[999.0, 0.0, 500.0], classes=5, labels=[2, 0, 2]),
}


def param_shapes(c):
    """(name, shape) in diffusers' registration order."""
    out = []
    ch, T = c["ch"], 4 * c["ch"][0]

    def conv(p, o, i, k=3):
        out.extend([(p + ".weight", (o, i, k, k)), (p + ".bias", (o,))])

    def lin(p, o, i):
        out.extend([(p + ".weight", (o, i)), (p + ".bias", (o,))])

    def norm(p, n):
        out.extend([(p + ".weight", (n,)), (p + ".bias", (n,))])

    def resnet(p, i, o):
        norm(p + ".norm1", i)
        conv(p + ".conv1", o, i)
        lin(p + ".time_emb_proj", o, T)
        norm(p + ".norm2", o)
        conv(p + ".conv2", o, o)
        if i != o:
            conv(p + ".conv_shortcut", o, i, 1)

    def attn(p, n):
        norm(p + ".group_norm", n)
        for m in ("to_q", "to_k", "to_v", "to_out.0"):
            lin(p + "." + m, n, n)

    L = len(ch)
    conv("conv_in", ch[0], c["cin"])
    lin("time_embedding.linear_1", T, ch[0])
    lin("time_embedding.linear_2", T, T)
    if c.get("classes"):
        out.append(("class_embedding.weight", (c["classes"], T)))
    for l in range(L):
        p, o, i = f"down_blocks.{l}", ch[l], ch[max(l - 1, 0)]
        if c["down"][l] == "AttnDownBlock2D":
            for j in range(c["layers"]):
                attn(f"{p}.attentions.{j}", o)
        for j in range(c["layers"]):
            resnet(f"{p}.resnets.{j}", i if j == 0 else o, o)
        if l + 1 < L:
            conv(f"{p}.downsamplers.0.conv", o, o)
    rev = list(reversed(ch))
    for u in range(L):
        p = f"up_blocks.{u}"
        prev, o, inp = rev[max(u - 1, 0)], rev[u], rev[min(u + 1, L - 1)]
        n = c["layers"] + 1
        if c["up"][u] == "AttnUpBlock2D":
            for j in range(n):
                attn(f"{p}.attentions.{j}", o)
        for j in range(n):
            skip = inp if j == n - 1 else o
            resnet(f"{p}.resnets.{j}", (prev if j == 0 else o) + skip, o)
        if u + 1 < L:
            conv(f"{p}.upsamplers.0.conv", o, o)
    attn("mid_block.attentions.0", ch[-1])
    resnet("mid_block.resnets.0", ch[-1], ch[-1])
    resnet("mid_block.resnets.1", ch[-1], ch[-1])
    norm("conv_norm_out", ch[0])
    conv("conv_out", c["cout"], ch[0])
    return out


def random_params(c, seed):
    rng = np.random.default_rng(seed)
    P = OrderedDict()
    for name, shape in param_shapes(c):
        if len(shape) == 1:
            v = rng.standard_normal(shape) * 0.1 + (1.0 if name.endswith("norm1.weight") or name.endswith(
                "norm2.weight") or name.endswith("group_norm.weight") or name == "conv_norm_out.weight" else 0.0)
        else:
            fan_in = int(np.prod(shape[1:]))
            v = rng.standard_normal(shape) / math.sqrt(fan_in)
        P[name] = torch.from_numpy(v.astype(np.float32).astype(np.float64)).requires_grad_()
    return P


def timestep_embedding(t, dim, flip, shift):
    """diffusers get_timestep_embedding: float32 frequencies and products, as ddpm.cpp; sin/cos of
    those float32 arguments in float64."""
    half = dim // 2
    exponent = (-math.log(10000.0) * torch.arange(half, dtype=torch.float32)) / (half - shift)
    freq = torch.exp(exponent.double()).float()
    arg = (t.float()[:, None] * freq[None, :]).double()
    emb = torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1)
    if flip:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    return emb


def unet(c, P, x, t):
    """x: NCHW float64; returns eps NCHW."""
    G, eps_n, T = c["groups"], c["eps"], 4 * c["ch"][0]

    def conv(p, h, stride=1, padding=1):
        return F.conv2d(h, P[p + ".weight"], P[p + ".bias"], stride=stride, padding=padding)

    def lin(p, h):
        return F.linear(h, P[p + ".weight"], P[p + ".bias"])

    def gn(p, h):
        return F.group_norm(h, G, P[p + ".weight"], P[p + ".bias"], eps_n)

    def resnet(p, h, temb):
        r = conv(p + ".conv1", F.silu(gn(p + ".norm1", h)))
        r = r + lin(p + ".time_emb_proj", F.silu(temb))[:, :, None, None]
        r = conv(p + ".conv2", F.silu(gn(p + ".norm2", r)))   # dropout 0
        sc = conv(p + ".conv_shortcut", h, padding=0) if (p + ".conv_shortcut.weight") in P else h
        return sc + r

    def attn(p, h):
        b, ch, hh, ww = h.shape
        n = gn(p + ".group_norm", h).reshape(b, ch, hh * ww).transpose(1, 2)
        q, k, v = (lin(p + "." + m, n) for m in ("to_q", "to_k", "to_v"))
        probs = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(ch), dim=-1)
        o = lin(p + ".to_out.0", probs @ v)
        return o.transpose(1, 2).reshape(b, ch, hh, ww) + h

    L = len(c["ch"])
    temb = timestep_embedding(t, c["ch"][0], c["flip"], c["shift"])
    temb = lin("time_embedding.linear_2", F.silu(lin("time_embedding.linear_1", temb)))
    if c.get("classes"):  # diffusers: emb = emb + class_embedding(class_labels)
        temb = temb + P["class_embedding.weight"][torch.tensor(c["labels"])]
    h = conv("conv_in", x)
    skips = [h]
    for l in range(L):
        for j in range(c["layers"]):
            h = resnet(f"down_blocks.{l}.resnets.{j}", h, temb)
            if c["down"][l] == "AttnDownBlock2D":
                h = attn(f"down_blocks.{l}.attentions.{j}", h)
            skips.append(h)
        if l + 1 < L:
            p = f"down_blocks.{l}.downsamplers.0.conv"
            if c["pad"] == 0:
                h = conv(p, F.pad(h, (0, 1, 0, 1)), stride=2, padding=0)
            else:
                h = conv(p, h, stride=2, padding=1)
            skips.append(h)
    h = resnet("mid_block.resnets.0", h, temb)
    h = attn("mid_block.attentions.0", h)
    h = resnet("mid_block.resnets.1", h, temb)
    for u in range(L):
        for j in range(c["layers"] + 1):
            h = torch.cat([h, skips.pop()], dim=1)
            h = resnet(f"up_blocks.{u}.resnets.{j}", h, temb)
            if c["up"][u] == "AttnUpBlock2D":
                h = attn(f"up_blocks.{u}.attentions.{j}", h)
        if u + 1 < L:
            h = conv(f"up_blocks.{u}.upsamplers.0.conv", F.interpolate(h, scale_factor=2.0, mode="nearest"))
    assert not skips
    h = F.silu(F.group_norm(h, G, P["conv_norm_out.weight"], P["conv_norm_out.bias"], eps_n))
    return conv("conv_out", h)


def f32(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float32).astype(np.float64))


def flat(tensors):
    return torch.cat([t.detach().reshape(-1) for t in tensors])


def tables(P):
    names = np.zeros((len(P), 96), dtype=np.int64)
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
        x = f32(rng.standard_normal((b, c["H"], c["W"], c["cin"])))
        d_eps = f32(rng.standard_normal((b, c["H"], c["W"], c["cout"])))
        t = torch.tensor(c["t"], dtype=torch.float64)
        eps = nhwc(unet(c, P, nchw(x), t))
        dparams = torch.autograd.grad(eps, list(P.values()), d_eps)
        names, shapes = tables(P)
        config = np.array([c["H"], c["W"], c["cin"], c["cout"], c["layers"], c["groups"], c["pad"],
                           int(c["flip"]), c["shift"], c["eps"], b], dtype=np.float64)
        arrays = {"x": x, "timesteps": t, "params": flat(P.values()), "d_eps": d_eps, "eps": eps,
                  "dparams": flat(dparams), "names": names, "shapes": shapes, "config": config,
                  "labels": np.array(c.get("labels", [-1] * b), dtype=np.int64)}
        if name == "sq28":
            # Five Adam steps (lr 1e-3, torch defaults otherwise) on MSE(eps, noise); losses[k] is
            # the loss before step k+1, losses[5] the loss after the fifth step.
            noise = f32(rng.standard_normal((b, c["H"], c["W"], c["cout"])))
            opt = torch.optim.Adam(list(P.values()), lr=1e-3, foreach=False)
            losses = []
            for _ in range(5):
                opt.zero_grad()
                loss = F.mse_loss(nhwc(unet(c, P, nchw(x), t)), noise)
                losses.append(loss.item())
                loss.backward()
                opt.step()
            with torch.no_grad():
                losses.append(F.mse_loss(nhwc(unet(c, P, nchw(x), t)), noise).item())
            arrays.update({"noise": noise, "losses": np.array(losses)})
        yield name, arrays
