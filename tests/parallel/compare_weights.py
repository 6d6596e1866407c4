#!/usr/bin/python3
"""Compares the training weights of two ddpm.cpp run directories.

Usage: compare_weights.py RUN_A RUN_B [--max-abs BOUND] [--loss-rtol RTOL]
Prints the largest absolute difference of the weights and their EMA (and of Adam's moments) and
exits non-zero when it is above BOUND, when the runs are not at the same step, or (with
--loss-rtol) when a step's logged loss differs by more than RTOL relative.
"""
import argparse
import json
import struct
import sys

import numpy as np


def read_state(run_dir):
    path = f"{run_dir}/training_state.safetensors"
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
        data = f.read()
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        assert info["dtype"] == "F32", (path, name, info["dtype"])
        tensors[name] = np.frombuffer(data[begin:end], dtype=np.float32)
    return tensors, header.get("__metadata__", {})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("run_a")
    parser.add_argument("run_b")
    parser.add_argument("--max-abs", type=float, default=0.0)
    parser.add_argument("--loss-rtol", type=float, default=None)
    args = parser.parse_args()
    if args.loss_rtol is not None:
        losses = []
        for run in (args.run_a, args.run_b):
            lines = [json.loads(line) for line in open(f"{run}/log.jsonl") if '"loss"' in line]
            losses.append({line["step"]: line["loss"] for line in lines})
        common = sorted(set(losses[0]) & set(losses[1]))
        worst = max(abs(losses[0][k] - losses[1][k]) / abs(losses[0][k]) for k in common)
        print(f"losses of {len(common)} steps: max relative difference {worst:.2e}, bound {args.loss_rtol:.1e}")
        if not common or worst > args.loss_rtol:
            sys.exit(f"the logged losses differ by {worst:.2e} relative, more than {args.loss_rtol:.1e}")
    a, meta_a = read_state(args.run_a)
    b, meta_b = read_state(args.run_b)
    if meta_a.get("step") != meta_b.get("step"):
        sys.exit(f"the runs are at different steps: {meta_a.get('step')} and {meta_b.get('step')}")
    worst = 0.0
    for name in ("params", "ema", "adam_m", "adam_v"):
        diff = float(np.max(np.abs(a[name].astype(np.float64) - b[name].astype(np.float64))))
        scale = float(np.max(np.abs(a[name])))
        print(f"{name}: max |a - b| = {diff:.3e} (max |a| = {scale:.3e}), {int(np.sum(a[name] != b[name]))} of "
              f"{a[name].size} values differ")
        if name in ("params", "ema"):
            worst = max(worst, diff)
    print(f"step {meta_a.get('step')}: weights max |a - b| = {worst:.3e}, bound {args.max_abs:.1e}")
    if worst > args.max_abs:
        sys.exit(f"weights differ by {worst:.3e}, more than the bound {args.max_abs:.1e}")


if __name__ == "__main__":
    main()
