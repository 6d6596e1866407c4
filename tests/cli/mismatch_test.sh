#!/usr/bin/env bash
# Mismatches get one-line explanations (docs/RELIABILITY.md): each case runs the CLI on a broken
# copy of the shipped model or run and checks the line it prints.
#   mismatch_test.sh DDPM_BINARY MODEL_DIR FIXTURES_DIR
set -uo pipefail
ddpm=$1 model=$2 fixtures=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

# expect NAME STATUS PATTERN -- COMMAND...: COMMAND exits with STATUS (0 or "fail") and its output
# (stdout + stderr) matches the extended regular expression PATTERN.
expect() {
  local name=$1 status=$2 pattern=$3
  shift 4
  local out rc
  out=$("$@" 2>&1)
  rc=$?
  if [[ $status == 0 && $rc != 0 ]] || [[ $status == fail && $rc == 0 ]] || ! grep -Eq -- "$pattern" <<<"$out"; then
    echo "FAIL $name (exit $rc): expected /$pattern/ in:"
    sed 's/^/    /' <<<"$out" | head -20
    failures=$((failures + 1))
  else
    echo "ok   $name: $(grep -Em1 -- "$pattern" <<<"$out" | cut -c1-200)"
  fi
}

# A model directory without scheduler/scheduler_config.json: diffusers' defaults, named.
cp -r "$model" "$work/no_scheduler"
rm "$work/no_scheduler/scheduler/scheduler_config.json"
expect missing-scheduler 0 "warning: .*scheduler_config.json is missing; assuming DDPMScheduler's defaults: 1000 timesteps, linear betas 0.0001..0.02, fixed_small variance" \
  -- "$ddpm" info --model "$work/no_scheduler"

# A scheduler config that leaves settings out: which defaults were taken.
cp -r "$model" "$work/partial_scheduler"
printf '{"_class_name": "DDPMScheduler", "num_train_timesteps": 1000}\n' >"$work/partial_scheduler/scheduler/scheduler_config.json"
expect partial-scheduler 0 "leaves 7 settings out; assuming DDPMScheduler's defaults: beta_schedule linear, beta_start 0.0001, .*variance_type fixed_small" \
  -- "$ddpm" info --model "$work/partial_scheduler"

# Weights of one architecture under another's config.
cp -r "$model" "$work/other_config"
"$ddpm" info --config fmnist-64 --save-config "$work/other_config/unet/config.json" >/dev/null 2>&1
expect config-mismatch fail "these weights belong to a different U-Net: they have block_out_channels \[32,64,64\].*but unet/config.json .* has block_out_channels \[64,128,128\]" \
  -- "$ddpm" info --model "$work/other_config"

# A NaN in the weights: reported by tensor on load, `ddpm info` included.
cp -r "$model" "$work/nan"
weights="$work/nan/unet/diffusion_pytorch_model.safetensors"
header=$(od -An -t u8 -N8 "$weights" | tr -d ' ')
printf '\x00\x00\xc0\x7f' | dd of="$weights" bs=1 seek=$((8 + header)) conv=notrunc status=none
expect nan-weights fail "tensor [a-z_.0-9]+ has 1 non-finite value \(NaN or Inf\)" -- "$ddpm" info --model "$work/nan"

# An RGB image for a grey model: converted, and said so.
expect rgb-image 0 "note: .*rgb_12x10.png has 3 channels \(RGB\) but the model takes 1 channel \(grey\): converted to grey" \
  -- "$ddpm" invert --model "$model" --image "$fixtures/rgb_12x10.png" --steps 2 --out "$work/invert.png"

# Resuming with a setting that would change the run.
OMP_NUM_THREADS=1 "$ddpm" train --config fmnist-small --steps 1 --batch 2 --final-samples 0 --out "$work/run" >/dev/null 2>&1 ||
  { echo "FAIL: could not train the run to resume"; failures=$((failures + 1)); }
expect resume-changed-batch fail "error: --resume .*: the run trains with --batch 2; --batch 8 would change it mid-run" \
  -- "$ddpm" train --resume "$work/run" --batch 8 --steps 2
expect resume-changed-config fail "the run trains with --config fmnist-small; --config fmnist-64 would change it" \
  -- "$ddpm" train --resume "$work/run" --config fmnist-64 --steps 2
expect resume-same-settings 0 "resuming .* at step 1 of 2" \
  -- env OMP_NUM_THREADS=1 "$ddpm" train --resume "$work/run" --batch 2 --steps 2 --final-samples 0

# A run killed before its first checkpoint: its options are there, its state is not.
mkdir -p "$work/unsaved"
cp "$work/run/train_options.json" "$work/unsaved/"
expect resume-before-first-checkpoint fail "error: --resume .*unsaved: no checkpoint there yet \(the run stopped before its first save\)" \
  -- "$ddpm" train --resume "$work/unsaved"

if ((failures)); then
  echo "mismatch: $failures case(s) failed"
  exit 1
fi
echo "mismatch: all cases explained in one line"
