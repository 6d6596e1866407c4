#!/usr/bin/env bash
# Sampled PNGs say what made them: `ddpm sample` writes Software, command and parameters text
# chunks (also into --out-dir's images; parameters end with the weights' checksum, which `ddpm info
# --model` prints too), `ddpm info --image` prints them, and every chunk's CRC is what an
# independent zlib (Python's) computes.
#   image_info_test.sh DDPM_BINARY MODEL_DIR
set -euo pipefail
ddpm=$1 model=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=1
"$ddpm" sample --model "$model" --n 2 --seed 5 --sampler ddim --steps 3 --spacing trailing --out "$work/my grid.png" \
  --out-dir "$work/each" 2>/dev/null
"$ddpm" info --image "$work/my grid.png" > "$work/info.txt"
cat "$work/info.txt"
grep -q "^  62x32, grey$" "$work/info.txt"
grep -q "^  Software: ddpm.cpp [0-9.]*$" "$work/info.txt"
grep -qF "  command: ddpm sample --model $model --n 2 --seed 5 --sampler ddim --steps 3 --spacing trailing --out '$work/my grid.png' --out-dir $work/each" "$work/info.txt"
grep -qF "  parameters: 2 images from $model: ddim, 3 steps (trailing spacing), eta 0, seed 5, batch 2, fp32, weights " "$work/info.txt"
# The weights' checksum in the PNG is the one `ddpm info --model` prints for the model.
checksum=$("$ddpm" info --model "$model" | sed -n 's/.*weights: all [0-9]* finite, checksum \([0-9a-f]\{16\}\) .*/\1/p')
[ -n "$checksum" ] || { echo "ddpm info --model printed no checksum"; exit 1; }
grep -q "  parameters: .*, weights $checksum$" "$work/info.txt" || { echo "the PNG does not record checksum $checksum"; exit 1; }
"$ddpm" info --image "$work/each/000001.png" | grep -qF "parameters: image 1 of 2 images from"
/usr/bin/python3 - "$work/my grid.png" <<'PY'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
pos, texts = 8, []
while pos < len(data):
    length, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + length]
    (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
    assert crc == zlib.crc32(kind + body), f"CRC of {kind} chunk"
    if kind == b"tEXt":
        texts.append(body.split(b"\0")[0].decode())
    pos += 12 + length
assert texts == ["Software", "command", "parameters"], texts
PY
if "$ddpm" info --image "$work/nothing.png" 2> "$work/err.txt"; then echo "a missing image was not an error"; exit 1; fi
grep -q "nothing.png" "$work/err.txt"
echo "image info: all checks passed"
