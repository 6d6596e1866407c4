#!/usr/bin/env bash
# examples/generate.c (built against libddpm.so) writes the same PNG, byte for byte, as
# `ddpm sample` with the same model, seed, steps, spacing and batch; a missing model directory is
# an error that names it.
#   example_test.sh GENERATE_EXAMPLE DDPM_BINARY MODEL_DIR
set -euo pipefail
example=$1 ddpm=$2 model=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=1
"$example" "$model" "$work/example.png" 5 3 8 2 2> "$work/example.log"
grep -q "wrote $work/example.png" "$work/example.log" || { cat "$work/example.log"; exit 1; }
"$ddpm" sample --model "$model" --n 5 --seed 3 --steps 8 --spacing trailing --batch 2 --out "$work/cli.png" 2>/dev/null
cmp "$work/example.png" "$work/cli.png"
if "$example" "$work/no-such-model" "$work/x.png" 1 2> "$work/missing.log"; then
  echo "a missing model directory was not an error"; exit 1
fi
grep -q "ddpm_model_load: .*no-such-model" "$work/missing.log" || { cat "$work/missing.log"; exit 1; }
echo "example: same PNG as ddpm sample"
