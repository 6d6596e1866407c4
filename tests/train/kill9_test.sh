#!/usr/bin/env bash
# Kill -9 at random moments: a small training run is killed with SIGKILL KILLS times (at random
# delays, so some kills land while a checkpoint is being written) and resumed each time. Every
# resume must start from the last complete checkpoint, and the final training state and exported
# model must equal those of an uninterrupted run byte for byte.
#
#   tests/train/kill9_test.sh build/ddpm [KILLS=20] [STEPS=60] [SEED=1]
set -euo pipefail
ddpm=$(realpath "$1")
kills_wanted=${2:-20}
steps=${3:-60}
RANDOM=${4:-1}
work=$(mktemp -d)
trap 'kill -9 $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
export OMP_NUM_THREADS=1  # the same arithmetic in every process

# A small 28x28 U-Net (two levels, attention at the lower one): a few hundred ms per process start (the data), ~30 ms per step at batch 4.
cat > "$work/config.json" <<'EOF'
{"_class_name": "UNet2DModel", "_diffusers_version": "0.21.4", "act_fn": "silu", "add_attention":
true, "attention_head_dim": null, "attn_norm_num_groups": null, "block_out_channels": [8, 16],
"center_input_sample": false, "class_embed_type": null, "down_block_types": ["DownBlock2D",
"AttnDownBlock2D"], "downsample_padding": 0, "downsample_type": "conv", "dropout": 0.1,
"flip_sin_to_cos": false, "freq_shift": 1, "in_channels": 1, "layers_per_block": 1,
"mid_block_scale_factor": 1.0, "mid_block_type": "UNetMidBlock2D", "norm_eps": 1e-06,
"norm_num_groups": 4, "num_class_embeds": null, "out_channels": 1, "resnet_time_scale_shift":
"default", "sample_size": 28, "time_embedding_dim": null, "time_embedding_type": "positional",
"up_block_types": ["AttnUpBlock2D", "UpBlock2D"], "upsample_type": "conv"}
EOF
train=(train --data fashion-mnist --config "$work/config.json" --steps "$steps" --batch 4 --lr 1e-3
       --warmup 5 --seed 3 --save-every 3 --final-samples 0 --log-every 1)

checkpoint_step() {  # the step recorded in a training state's safetensors metadata
  python3 - "$1" <<'EOF'
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    print(json.loads(f.read(n))["__metadata__"]["step"])
EOF
}

"$ddpm" "${train[@]}" --out "$work/whole" > /dev/null 2>&1

state="$work/parts/training_state.safetensors"
start() {  # a fresh run, or a resume from the last checkpoint
  if [ -e "$state" ]; then
    resumed_from+=("$(checkpoint_step "$state")")
    "$ddpm" train --resume "$work/parts" > "$work/log" 2>&1 &
  else
    rm -rf "$work/parts"  # killed before its first checkpoint: start over
    resumed_from+=("new")
    "$ddpm" "${train[@]}" --out "$work/parts" > "$work/log" 2>&1 &
  fi
  pid=$!
}
resumed_from=()
kills=0
during_write=0
start
while [ "$kills" -lt "$kills_wanted" ]; do
  sleep "0.$(printf '%03d' $((RANDOM % 600)))"
  if ! kill -0 "$pid" 2>/dev/null; then
    wait "$pid" || { echo "kill9: a run failed on its own:"; cat "$work/log"; exit 1; }
    if [ "$(checkpoint_step "$state")" = "$steps" ]; then break; fi
  else
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    kills=$((kills + 1))
    # A leftover temporary file means the kill landed inside a checkpoint write.
    if [ -n "$(find "$work/parts" -name '*.tmp' 2>/dev/null | head -1)" ]; then during_write=$((during_write + 1)); fi
    # Whatever the moment, the last checkpoint must be complete and readable.
    if [ -e "$state" ] && [ "$(checkpoint_step "$state")" = "$steps" ]; then break; fi
  fi
  start
done
if kill -0 "$pid" 2>/dev/null; then  # the last run, not killed: let it finish
  wait "$pid" || { echo "kill9: the final run failed:"; cat "$work/log"; exit 1; }
fi
if [ "$(checkpoint_step "$state")" != "$steps" ]; then
  "$ddpm" train --resume "$work/parts" > "$work/log" 2>&1 || { cat "$work/log"; exit 1; }
fi

echo "kill9: $kills kills ($during_write inside a checkpoint write); runs started from: ${resumed_from[*]}"
for f in training_state.safetensors model/unet/diffusion_pytorch_model.safetensors; do
  if ! cmp -s "$work/whole/$f" "$work/parts/$f"; then
    echo "kill9: FAIL: $f differs from the uninterrupted run's"
    exit 1
  fi
done
echo "kill9: final training state and exported model equal the uninterrupted run's, byte for byte"
