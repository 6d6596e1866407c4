"""The short table scripts/device-check prints last: CUDA test results, the card's measured bf16
matrix rate, ddpm.cpp's CUDA convolutions against PyTorch's at the same shapes on the same card, and
the whole-model figures (PyTorch eager and compiled; ddpm.cpp's U-Net where it runs on CUDA).

Usage: python3 bench/device_table.py OUT_DIR   (reads the files scripts/device-check wrote there)
"""
import json
import os
import re
import sys


def read_jsonl(path):
    if not os.path.exists(path):
        return []
    rows = []
    for line in open(path):
        line = line.strip()
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return rows


def fmt(value, digits=1):
    return "-" if value is None else f"{value:.{digits}f}"


def main(out):
    torch_rows = read_jsonl(os.path.join(out, "torch.jsonl")) + read_jsonl(os.path.join(out, "torch-compile.jsonl"))
    ours = read_jsonl(os.path.join(out, "ddpm-cuda-ops.jsonl"))
    unet = [r for r in read_jsonl(os.path.join(out, "ddpm-cuda-unet.jsonl")) if "mode" in r]
    device = next((r for r in torch_rows if r["what"] == "device"), {})
    matmul = next((r["tflops"] for r in torch_rows if r["what"] == "matmul"), None)

    print(f"## device-check: {device.get('name', '?')} (torch {device.get('torch', '?')}, "
          f"cuDNN {device.get('cudnn', '?')})")
    tests = open(os.path.join(out, "cuda-tests.log")).read() if os.path.exists(os.path.join(out, "cuda-tests.log")) else ""
    summary = re.search(r"\d+% tests passed, \d+ tests failed out of \d+", tests)
    cases = {kind: sum(int(n) for n in re.findall(rf"\[  {kind} *\] (\d+) tests?[.,]", tests))
             for kind in ("PASSED", "FAILED", "SKIPPED")}
    print(f"CUDA tests: {summary.group(0) if summary else 'no result (see cuda-tests.log)'}; test cases: "
          f"{cases['PASSED']} passed, {cases['FAILED']} failed, {cases['SKIPPED']} skipped")
    print(f"bf16 matmul ceiling (PyTorch, 8192^3): {fmt(matmul)} TFLOP/s")
    print()
    print("| conv (batch 128, bf16) | ddpm.cpp fwd | PyTorch fwd | ratio | ddpm.cpp bwd | PyTorch bwd | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for t in (r for r in torch_rows if r["what"] == "conv"):
        o = next((r for r in ours if r.get("name") == t["name"] and r.get("precision") == "bf16"), None)
        fwd = o["fwd_tflops"] if o else None
        bwd = o["bwd_tflops"] if o else None
        ratio_f = fwd / t["fwd_tflops"] if fwd else None
        ratio_b = bwd / t["bwd_tflops"] if bwd else None
        print(f"| {t['name']} | {fmt(fwd)} | {fmt(t['fwd_tflops'])} | {fmt(ratio_f, 2)}x | {fmt(bwd)} | "
              f"{fmt(t['bwd_tflops'])} | {fmt(ratio_b, 2)}x |")
    print("(TFLOP/s; bwd = input and weight gradients together)")
    print()
    print("| cifar10-ddpm | batch | img/s | TFLOP/s | MFU |")
    print("|---|---:|---:|---:|---:|")
    for r in (r for r in torch_rows if r["what"] == "unet"):
        mfu = f"{100 * r['mfu']:.1f}%" if r.get("mfu") else "-"
        print(f"| PyTorch {r['torch']} bf16 {r['mode']} | {r['batch']} | {r['img_per_s']:.0f} | {r['tflops']:.1f} | {mfu} |")
    if not unet:
        print("| ddpm.cpp train / sample | - | no result (see ddpm-cuda-unet.err) | | |")
    for r in unet:
        tflops = r["gflops"] / 1e3
        mfu = f"{100 * tflops / matmul:.1f}%" if matmul else "-"
        eager = next((t for t in torch_rows if t["what"] == "unet" and t["mode"] == r["mode"] and t["torch"] == "eager"), None)
        ratio = f" ({r['img_per_s'] / eager['img_per_s']:.2f}x PyTorch eager)" if eager else ""
        print(f"| ddpm.cpp bf16 {r['mode']} | {r['batch']} | {r['img_per_s']:.0f}{ratio} | {tflops:.1f} | {mfu} |")
    for r in (r for r in unet if r["mode"] == "train"):
        hours = 800000 * 128 / r["img_per_s"] / 3600
        print(f"\nThe paper's CIFAR-10 run (800k steps at batch 128) at this speed: {hours:.1f} hours on one card")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "device-check-out")
