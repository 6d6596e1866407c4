#!/usr/bin/env bash
# Image-conditioned models end to end (mechanics, not quality: 3 training steps): a pairs:DIR
# segmentation model from scripts/make-shapes (RGB input -> grey mask: in_channels 4, out 1)
# translates one image and a dataset with its IoU report; a super-resolution model reports PSNR
# against the bicubic baseline; `ddpm sample` refuses a conditioned model, naming translate.
#   translate_test.sh DDPM_BINARY SOURCE_DIR
set -euo pipefail
ddpm=$1 src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=1
/usr/bin/python3 "$src/scripts/make-shapes" "$work/shapes" --train 16 --test 4
"$ddpm" train --data "pairs:$work/shapes/train" --config "$src/configs/shapes-seg.json" --steps 3 --batch 4 \
  --final-samples 0 --out "$work/seg" 2>&1 | grep -E "^training"
"$ddpm" info --model "$work/seg/model" | grep "channels 4 -> 1"
"$ddpm" translate --model "$work/seg/model" --image "$work/shapes/test/input/00000.png" --n 2 --sampler ddim --steps 3 \
  --out "$work/one.png" 2>&1 | grep wrote
"$ddpm" translate --model "$work/seg/model" --data "pairs:$work/shapes/test" --split train --metric iou --count 4 \
  --sampler ddim --steps 3 --out "$work/set.png" 2>&1 | grep -E "IoU \(pixel >= 128\)  model [0-9.]+, every pixel foreground [0-9.]+"
"$ddpm" train --config fmnist-small --super-resolution 4 --steps 2 --batch 2 --final-samples 0 --out "$work/sr" >/dev/null 2>&1
"$ddpm" translate --model "$work/sr/model" --data fashion-mnist --super-resolution 4 --count 3 --sampler ddim --steps 2 \
  --out "$work/sr.png" 2>&1 | grep -E "PSNR \(mean over images\)  model [0-9.]+ dB, baseline \(the condition itself\) [0-9.]+ dB"
if out=$("$ddpm" sample --model "$work/sr/model" --n 1 --steps 1 2>&1); then echo "FAIL: sample accepted a conditioned model"; exit 1; fi
grep -q "image-conditioned (in_channels 2 = 1 image + 1 condition channels): sample it with \`ddpm translate" <<<"$out" ||
  { echo "FAIL: $out"; exit 1; }
echo "translate: all checks passed"
