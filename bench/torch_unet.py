"""The PyTorch side of bench/compare_pytorch: diffusers' UNet2DModel rebuilt from a ddpm.cpp config
(configs/*.json, diffusers' keys) with torch.nn layers, and the same two steps ddpm.cpp's
`ddpm bench` times: a training step (L_simple draw, forward, MSE, backward, gradient clipping at 1,
Adam, EMA) and a sampling step (one forward and the DDPM update with fresh noise).

bf16 is autocast (convolutions and matmuls in bf16), the usual way to run bf16 in PyTorch, with
group norm in fp32 (GroupNorm32: torch 1.13's CPU autocast does not cast group_norm's input, which
then fails on a bf16 activation with fp32 weights). Weights are random: speed does not depend on
them.
"""
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class GroupNorm32(nn.GroupNorm):
    """Group norm computed in fp32 (a no-op cast in fp32 mode)."""

    def forward(self, x):
        return super().forward(x.float())


class Resnet(nn.Module):
    def __init__(self, cin, cout, temb, groups, eps, dropout):
        super().__init__()
        self.norm1 = GroupNorm32(groups, cin, eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, cout)
        self.norm2 = GroupNorm32(groups, cout, eps)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return (self.conv_shortcut(x) if self.conv_shortcut is not None else x) + h


class Attention(nn.Module):
    def __init__(self, ch, groups, eps):
        super().__init__()
        self.group_norm = GroupNorm32(groups, ch, eps)
        self.to_q, self.to_k, self.to_v, self.to_out = (nn.Linear(ch, ch) for _ in range(4))

    def forward(self, x):
        b, c, h, w = x.shape
        n = self.group_norm(x).reshape(b, c, h * w).transpose(1, 2)
        q, k, v = self.to_q(n), self.to_k(n), self.to_v(n)
        probs = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(c), dim=-1)
        return self.to_out(probs @ v).transpose(1, 2).reshape(b, c, h, w) + x


class UNet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ch, L = cfg["block_out_channels"], len(cfg["block_out_channels"])
        G, eps, drop, layers = cfg["norm_num_groups"], cfg["norm_eps"], cfg["dropout"], cfg["layers_per_block"]
        self.cfg, T = cfg, 4 * ch[0]
        self.linear_1, self.linear_2 = nn.Linear(ch[0], T), nn.Linear(T, T)
        self.conv_in = nn.Conv2d(cfg["in_channels"], ch[0], 3, padding=1)
        self.down, self.up, skips = nn.ModuleList(), nn.ModuleList(), [ch[0]]
        for l in range(L):
            block = nn.ModuleDict({"resnets": nn.ModuleList(), "attentions": nn.ModuleList()})
            for j in range(layers):
                block["resnets"].append(Resnet(ch[l - 1] if (j == 0 and l > 0) else ch[l], ch[l], T, G, eps, drop))
                if cfg["down_block_types"][l] == "AttnDownBlock2D":
                    block["attentions"].append(Attention(ch[l], G, eps))
                skips.append(ch[l])
            if l + 1 < L:
                block["down"] = nn.Conv2d(ch[l], ch[l], 3, stride=2, padding=cfg["downsample_padding"])
                skips.append(ch[l])
            self.down.append(block)
        self.mid = nn.ModuleList([Resnet(ch[-1], ch[-1], T, G, eps, drop), Attention(ch[-1], G, eps),
                                  Resnet(ch[-1], ch[-1], T, G, eps, drop)])
        for i in range(L):
            out, prev = ch[L - 1 - i], ch[L - 1 - max(i - 1, 0)]
            block = nn.ModuleDict({"resnets": nn.ModuleList(), "attentions": nn.ModuleList()})
            for j in range(layers + 1):
                block["resnets"].append(Resnet((prev if j == 0 else out) + skips.pop(), out, T, G, eps, drop))
                if cfg["up_block_types"][i] == "AttnUpBlock2D":
                    block["attentions"].append(Attention(out, G, eps))
            if i + 1 < L:
                block["up"] = nn.Conv2d(out, out, 3, padding=1)
            self.up.append(block)
        self.norm_out = GroupNorm32(G, ch[0], eps)
        self.conv_out = nn.Conv2d(ch[0], cfg["out_channels"], 3, padding=1)

    def forward(self, x, t):
        half, shift = self.cfg["block_out_channels"][0] // 2, self.cfg["freq_shift"]
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / (half - shift))
        arg = t.float()[:, None] * freqs[None, :]
        emb = torch.cat([torch.cos(arg), torch.sin(arg)] if self.cfg["flip_sin_to_cos"] else
                        [torch.sin(arg), torch.cos(arg)], dim=-1)
        temb = self.linear_2(F.silu(self.linear_1(emb)))
        h = self.conv_in(x)
        skips = [h]
        for block in self.down:
            for j, resnet in enumerate(block["resnets"]):
                h = resnet(h, temb)
                if len(block["attentions"]):
                    h = block["attentions"][j](h)
                skips.append(h)
            if "down" in block:
                if self.cfg["downsample_padding"] == 0:
                    h = F.pad(h, (0, 1, 0, 1))
                h = block["down"](h)
                skips.append(h)
        h = self.mid[2](self.mid[1](self.mid[0](h, temb)), temb)
        for block in self.up:
            for j, resnet in enumerate(block["resnets"]):
                h = resnet(torch.cat([h, skips.pop()], dim=1), temb)
                if len(block["attentions"]):
                    h = block["attentions"][j](h)
            if "up" in block:
                h = block["up"](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


def linear_schedule(T=1000):
    betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
    return betas, torch.cumprod(1 - betas, 0)


def time_steps(step, warmup, seconds):
    """Median and best seconds per step, after `warmup` untimed steps (at least 5 timed)."""
    for _ in range(warmup):
        step()
    times, start = [], time.perf_counter()
    while len(times) < 5 or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2], times[0], len(times)


def bench(cfg, mode, batch, precision, seconds):
    """Returns (median s, best s, steps timed) of one training or sampling step."""
    torch.manual_seed(0)
    model = UNet(cfg)
    H, W, C = cfg["sample_size"], cfg["sample_size"], cfg["in_channels"]
    betas, ac = linear_schedule()
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    if mode == "train":
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=2e-4)
        params = [p for p in model.parameters()]
        ema = [p.detach().clone() for p in params]
        x0 = torch.rand(batch, C, H, W) * 2 - 1

        def step():
            t = torch.randint(0, 1000, (batch,))
            noise = torch.randn_like(x0)
            a = ac[t].float()[:, None, None, None]
            x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
            with autocast:
                eps = model(x_t, t)
            loss = F.mse_loss(eps.float(), noise)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            with torch.no_grad():
                torch._foreach_mul_(ema, 0.9999)
                torch._foreach_add_(ema, params, alpha=1 - 0.9999)
    else:
        model.eval()
        x = torch.randn(batch, C, H, W)
        state = {"t": 999}

        @torch.no_grad()
        def step():
            t = state["t"]
            with autocast:
                eps = model(x, torch.full((batch,), t)).float()
            a, a_prev, beta = ac[t].item(), ac[t - 1].item(), betas[t].item()
            x0 = ((x - math.sqrt(1 - a) * eps) / math.sqrt(a)).clamp(-1, 1)
            mean = (beta * math.sqrt(a_prev) / (1 - a)) * x0 + ((1 - a_prev) * math.sqrt(1 - beta) / (1 - a)) * x
            x.copy_(mean + math.sqrt(beta) * torch.randn_like(x))
            state["t"] = t - 1 if t > 1 else 999
    return time_steps(step, 3, seconds)
