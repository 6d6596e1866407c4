#!/usr/bin/env bash
# --device end to end: `ddpm devices` names the CPU and the CUDA device or why there is none; where
# none answers (CI), --device cuda is refused with that reason on every kind of command, before any
# work or file is made; where one answers, a short sample on it gives an image. A device name that
# does not exist is refused by the parser.
#   device_test.sh DDPM_BINARY MODEL_DIR
set -euo pipefail
ddpm=$1
model=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=1
devices=$("$ddpm" devices)
echo "$devices"
grep -q '^cpu ' <<<"$devices" || { echo "FAIL: no cpu line"; exit 1; }
grep -q '^cuda ' <<<"$devices" || { echo "FAIL: no cuda line"; exit 1; }
if grep -q '^cuda  none: ' <<<"$devices"; then
  for cmd in "sample --model $model --n 1 --out $work/s.png" "train --config fmnist-small --steps 1 --out $work/run" \
             "eval nll --model $model --n 1" "bench --config fmnist-small --seconds 0.1" "bench ops"; do
    # shellcheck disable=SC2086
    if out=$("$ddpm" $cmd --device cuda 2>&1); then echo "FAIL: ddpm $cmd --device cuda ran without a device"; exit 1; fi
    grep -q 'error: .*--device cuda needs a CUDA device: ' <<<"$out" || { echo "FAIL: ddpm $cmd: $out"; exit 1; }
  done
  [ ! -e "$work/s.png" ] && [ ! -e "$work/run" ] || { echo "FAIL: a refused command wrote files"; exit 1; }
else
  "$ddpm" sample --model "$model" --n 2 --steps 3 --spacing trailing --device cuda --out "$work/s.png"
  [ -s "$work/s.png" ] || { echo "FAIL: no image from --device cuda"; exit 1; }
fi
if "$ddpm" sample --model "$model" --device tpu >/dev/null 2>&1; then echo "FAIL: --device tpu accepted"; exit 1; fi
echo "device: all checks passed"
