#!/usr/bin/python3
"""Writes PyTorch reference results for one op, for the C++ tests to compare against.

Usage: /usr/bin/python3 tests/reference/make_reference.py --op silu --out DIR

Each module ops/<op>.py defines cases(), yielding (case_name, {array_name: array}). Arrays are
saved as DIR/<case_name>/<array_name>.npy (float32, or int64 for integer arrays). Activations are
NHWC, as in ddpm.cpp; parameters keep PyTorch's layout. References are computed in float64.
"""
import argparse
import importlib
import os
import sys

import numpy as np
import torch


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--op", required=True, help="module name under tests/reference/ops")
    parser.add_argument("--out", required=True, help="output directory")
    args = parser.parse_args()

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    module = importlib.import_module(f"ops.{args.op}")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    count = 0
    for case_name, arrays in module.cases():
        case_dir = os.path.join(args.out, case_name)
        os.makedirs(case_dir, exist_ok=True)
        for name, value in arrays.items():
            if isinstance(value, torch.Tensor):
                value = value.detach().cpu().numpy()
            value = np.asarray(value)
            value = value.astype(np.int64 if np.issubdtype(value.dtype, np.integer) else np.float32)
            np.save(os.path.join(case_dir, name + ".npy"), np.ascontiguousarray(value))
        count += 1
    print(f"{args.op}: wrote {count} cases to {args.out}")


if __name__ == "__main__":
    main()
