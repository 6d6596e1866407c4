"""PyTorch on the GPU: the baseline that scripts/device-check runs beside ddpm.cpp's CUDA backend on
the same card, in the same run. Prints one JSON object per measurement:

  matmul   the card's measured bf16 matrix rate (8192^3, the ceiling for model FLOP utilisation)
  conv     each of cifar10-ddpm's convolution shapes at batch 128: forward and backward (input
           and weight gradients) in bf16, channels_last, as `ddpm bench ops --device cuda` times them
  unet     cifar10-ddpm (bench/torch_unet.py's UNet2DModel) training step at batch 128 (autocast
           bf16, channels_last, Adam, clipping, EMA) and one reverse sampling step at batch 256,
           eager, then torch.compile (--compile) when it finishes within --compile-seconds

Times are CUDA-event medians after warm-up. Usage: python3 bench/torch_cuda.py [--compile]
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_unet import UNet, linear_schedule  # noqa: E402

# (name, batch, height, width, in, out, kernel, stride): cifar10-ddpm's convolutions, as
# app/bench_cuda_ops.cpp lists them.
CONV_SHAPES = [
    ("conv3x3 32x32 128->128", 128, 32, 32, 128, 128, 3, 1),
    ("conv3x3 32x32 256->128", 128, 32, 32, 256, 128, 3, 1),
    ("conv3x3 16x16 256->256", 128, 16, 16, 256, 256, 3, 1),
    ("conv3x3 8x8 512->256", 128, 8, 8, 512, 256, 3, 1),
    ("conv3x3 4x4 256->256", 128, 4, 4, 256, 256, 3, 1),
    ("conv3x3s2 32x32 128->128", 128, 32, 32, 128, 128, 3, 2),
]


def median_ms(fn, warmup=3, repeats=20):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2]


def emit(record):
    print(json.dumps(record), flush=True)


def bench_matmul():
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    ms = median_ms(lambda: a @ b, warmup=3, repeats=10)
    tflops = 2 * 8192**3 / ms / 1e9
    emit({"what": "matmul", "shape": "8192^3 bf16 (random data)", "ms": ms, "tflops": tflops})
    return tflops


def bench_convs():
    for name, n, h, w, cin, cout, k, stride in CONV_SHAPES:
        x = torch.randn(n, cin, h, w, device="cuda", dtype=torch.bfloat16).to(memory_format=torch.channels_last)
        weight = torch.randn(cout, cin, k, k, device="cuda", dtype=torch.bfloat16).to(memory_format=torch.channels_last)
        x.requires_grad_(True)
        weight.requires_grad_(True)
        # diffusers' Downsample2D: pad (0,1) then a 3x3 stride-2 convolution without padding.
        conv = (lambda: F.conv2d(F.pad(x, (0, 1, 0, 1)), weight, stride=2)) if stride == 2 else \
            (lambda: F.conv2d(x, weight, padding=k // 2))
        y = conv()
        dy = torch.randn_like(y)
        flops = 2 * n * y.shape[2] * y.shape[3] * cout * cin * k * k
        fwd = median_ms(lambda: conv())
        bwd = median_ms(lambda: torch.autograd.grad(conv(), (x, weight), dy)) - fwd
        emit({"what": "conv", "name": name, "fwd_ms": fwd, "bwd_ms": bwd, "fwd_tflops": flops / fwd / 1e9,
              "bwd_tflops": 2 * flops / bwd / 1e9})


def unet_forward_flops(model, batch, cfg):
    """Convolutions, linear layers and the two attention products of one forward, counted by hooks."""
    total = [0]

    def conv_hook(module, inputs, output):
        total[0] += 2 * output.numel() * module.in_channels * module.kernel_size[0] * module.kernel_size[1]

    def linear_hook(module, inputs, output):
        total[0] += 2 * output.numel() * module.in_features

    hooks = []
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, torch.nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    s, device = cfg["sample_size"], next(model.parameters()).device
    with torch.no_grad():
        model(torch.zeros(batch, cfg["in_channels"], s, s, device=device), torch.zeros(batch, device=device))
    for h in hooks:
        h.remove()
    return total[0]


def attention_flops(cfg, batch):
    """The two attention products q k^T and P v: 2 * 2 * positions^2 * channels per image and attention."""
    ch, levels, s = cfg["block_out_channels"], len(cfg["block_out_channels"]), cfg["sample_size"]
    flops = 0
    for level in range(levels):
        positions = (s >> level) ** 2
        per = 4 * positions * positions * ch[level] * batch
        if cfg["down_block_types"][level] == "AttnDownBlock2D":
            flops += cfg["layers_per_block"] * per
        if cfg["up_block_types"][levels - 1 - level] == "AttnUpBlock2D":
            flops += (cfg["layers_per_block"] + 1) * per
    flops += 4 * ((s >> (levels - 1)) ** 2) ** 2 * ch[-1] * batch  # the mid block's attention
    return flops


def make_steps(model, cfg, train_batch, sample_batch):
    s, c = cfg["sample_size"], cfg["in_channels"]
    betas, ac = linear_schedule()
    ac_dev = ac.float().cuda()
    opt = torch.optim.Adam(model.parameters(), lr=2e-4)
    params = list(model.parameters())
    ema = [p.detach().clone() for p in params]
    x0 = (torch.rand(train_batch, c, s, s, device="cuda") * 2 - 1).to(memory_format=torch.channels_last)

    def train_step():
        model.train()
        t = torch.randint(0, 1000, (train_batch,), device="cuda")
        noise = torch.randn_like(x0)
        a = ac_dev[t][:, None, None, None]
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
        with torch.autocast("cuda", dtype=torch.bfloat16):
            eps = model(x_t, t)
        loss = F.mse_loss(eps.float(), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema, params, 1 - 0.9999)

    x = torch.randn(sample_batch, c, s, s, device="cuda").to(memory_format=torch.channels_last)
    t_sample = 500
    a, a_prev, beta = ac[t_sample].item(), ac[t_sample - 1].item(), betas[t_sample].item()
    timesteps = torch.full((sample_batch,), t_sample, device="cuda")

    @torch.no_grad()
    def sample_step():
        model.eval()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            eps = model(x, timesteps).float()
        x0_pred = ((x - math.sqrt(1 - a) * eps) / math.sqrt(a)).clamp(-1, 1)
        mean = (beta * math.sqrt(a_prev) / (1 - a)) * x0_pred + ((1 - a_prev) * math.sqrt(1 - beta) / (1 - a)) * x
        x.copy_(mean + math.sqrt(beta) * torch.randn_like(x))

    return train_step, sample_step


def bench_unet(cfg, train_batch, sample_batch, compiled, matmul_tflops):
    torch.manual_seed(0)
    model = UNet(cfg).cuda().to(memory_format=torch.channels_last)
    forward_flops = unet_forward_flops(model, 1, cfg) + attention_flops(cfg, 1)
    runner = model
    mode = "eager"
    if compiled:
        runner = torch.compile(model)
        mode = "compile"
    start = time.time()
    train_step, sample_step = make_steps(runner, cfg, train_batch, sample_batch)
    for what, step, batch, flops_per_image in (("train", train_step, train_batch, 3 * forward_flops),
                                               ("sample", sample_step, sample_batch, forward_flops)):
        ms = median_ms(step, warmup=5, repeats=20)
        tflops = flops_per_image * batch / ms / 1e9
        emit({"what": "unet", "mode": what, "torch": mode, "batch": batch, "ms": ms, "img_per_s": batch / ms * 1e3,
              "tflops": tflops, "mfu": tflops / matmul_tflops if matmul_tflops else None,
              "forward_gflop_per_image": forward_flops / 1e9, "setup_and_run_s": time.time() - start})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default=os.path.join(os.path.dirname(__file__), "..", "configs", "cifar10-ddpm.json"))
    parser.add_argument("--train-batch", type=int, default=128)
    parser.add_argument("--sample-batch", type=int, default=256)
    parser.add_argument("--compile", action="store_true", help="torch.compile only (run in its own process)")
    parser.add_argument("--matmul-tflops", type=float, default=0.0, help="for --compile: the measured ceiling")
    args = parser.parse_args()
    torch.backends.cudnn.benchmark = True
    emit({"what": "device", "name": torch.cuda.get_device_name(0), "torch": torch.__version__,
          "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()})
    with open(args.config) as f:
        cfg = json.load(f)
    if args.compile:
        bench_unet(cfg, args.train_batch, args.sample_batch, True, args.matmul_tflops)
        return
    matmul_tflops = bench_matmul()
    bench_convs()
    bench_unet(cfg, args.train_batch, args.sample_batch, False, matmul_tflops)


if __name__ == "__main__":
    main()
