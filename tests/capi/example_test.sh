#!/usr/bin/env bash
# examples/generate.c (built against libddpm.so) writes the same PNG, byte for byte, as
# `ddpm sample` with the same model, seed, steps, spacing and batch (less the CLI's text chunks); a
# missing model directory is an error that names it.
#   example_test.sh GENERATE_EXAMPLE DDPM_BINARY MODEL_DIR
set -euo pipefail
example=$1 ddpm=$2 model=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=1
"$example" "$model" "$work/example.png" 5 3 8 2 2> "$work/example.log"
grep -q "wrote $work/example.png" "$work/example.log" || { cat "$work/example.log"; exit 1; }
"$ddpm" sample --model "$model" --n 5 --seed 3 --steps 8 --spacing trailing --batch 2 --out "$work/cli.png" 2>/dev/null
# The CLI's PNG also says what made it (text chunks); the rest of the file must be the same bytes.
/usr/bin/python3 - "$work/cli.png" "$work/cli-pixels.png" <<'PY'
import struct, sys
data, out, pos = open(sys.argv[1], "rb").read(), bytearray(), 8
out += data[:8]
while pos < len(data):
    (length,) = struct.unpack(">I", data[pos:pos + 4])
    if data[pos + 4:pos + 8] not in (b"tEXt", b"iTXt"):
        out += data[pos:pos + 12 + length]
    pos += 12 + length
open(sys.argv[2], "wb").write(out)
PY
cmp "$work/example.png" "$work/cli-pixels.png"
if "$example" "$work/no-such-model" "$work/x.png" 1 2> "$work/missing.log"; then
  echo "a missing model directory was not an error"; exit 1
fi
grep -q "ddpm_model_load: .*no-such-model" "$work/missing.log" || { cat "$work/missing.log"; exit 1; }
echo "example: same PNG as ddpm sample"
