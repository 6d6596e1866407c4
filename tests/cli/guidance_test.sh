#!/usr/bin/env bash
# Class-conditional sampling end to end: a small class-conditional model trained a few steps (large
# steps so that the class matters), then `ddpm sample` with --class and --guidance:
#   W = 0 reproduces the unconditional draw exactly (eps_uncond + 0 (eps_cond - eps_uncond));
#   W = 1 (the conditional model) differs from it, and W = 3 lies further out on the same side;
#   --class all draws a row per class; a class the model lacks is refused naming the range.
#   guidance_test.sh DDPM_BINARY
set -euo pipefail
ddpm=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=1
"$ddpm" train --data synthetic --config fmnist-small --class-conditional --label-dropout 0.5 --steps 6 --batch 4 \
  --lr 1e-2 --warmup 1 --ema-decay 0 --final-samples 0 --out "$work/run" >/dev/null 2>&1
draw() {  # draw NAME FLAGS...: 3 images, DDIM 3 steps, seed 0, into NAME.npy
  local name=$1
  shift
  "$ddpm" sample --model "$work/run/model" --n 3 --steps 3 --sampler ddim --seed 0 --npy "$work/$name.npy" \
    --out "$work/$name.png" "$@" 2>&1 | grep '^sampling'
}
draw uncond
draw w0 --class 3 --guidance 0
draw w1 --class 3 --guidance 1
draw w3 --class 3 --guidance 3
/usr/bin/python3 - "$work" <<'PY'
import sys
import numpy as np
d = sys.argv[1]
u, w0, w1, w3 = (np.load(f"{d}/{n}.npy").astype(np.float64) for n in ("uncond", "w0", "w1", "w3"))
assert (w0 == u).all(), "guidance 0 is not the unconditional draw"
d1, d3 = np.abs(w1 - u).mean(), np.abs(w3 - u).mean()
assert d1 > 0.01, f"class 3 at guidance 1 equals the unconditional draw (mean |diff| {d1})"
assert d3 > 1.5 * d1, f"guidance 3 is not further from unconditional than guidance 1 ({d3} vs {d1})"
print(f"guidance: W=0 equals unconditional; mean |W=1 - uncond| {d1:.3f}, |W=3 - uncond| {d3:.3f} (grey levels)")
PY
"$ddpm" sample --model "$work/run/model" --class all --n 2 --steps 2 --sampler ddim --out "$work/all.png" 2>&1 | grep '^sampling'
size=$(od -An -t u1 -j16 -N8 "$work/all.png" | tr -s ' ')  # IHDR width, height (big endian)
echo "grid bytes:$size"
[[ $size == " 0 0 0 62 0 0 1 46" ]] || { echo "FAIL: --class all --n 2 should be 2 columns x 10 rows (62x302)"; exit 1; }
if out=$("$ddpm" sample --model "$work/run/model" --class 10 --n 1 --steps 1 2>&1); then
  echo "FAIL: class 10 of 10 accepted"; exit 1
fi
grep -q -- "--class 10: give a class in 0..9 or 'all'" <<<"$out" || { echo "FAIL: $out"; exit 1; }
echo "guidance: all checks passed"
