#!/usr/bin/env bash
# Data-parallel scaling on this machine: training img/s of fmnist-small at global batch 64 for
#   1 process x 1 thread, 1 process x 2 threads, and mpirun -np 2 x 1 thread (bound to a core each),
# run alternately ROUNDS times; prints the median of the logged img/s per setup (after the first
# LOG_EVERY steps, which include start-up) and the efficiencies.
#   bench/parallel_scaling.sh [BUILD_DIR] [STEPS] [ROUNDS]
set -euo pipefail
build=${1:-build}
steps=${2:-60}
rounds=${3:-3}
ddpm="$build/ddpm"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
args=(--data fashion-mnist --config fmnist-small --batch 64 --steps "$steps" --log-every 10 --save-every 100000
      --final-samples 0)
run() {  # NAME COMMAND...
  local name=$1; shift
  local out="$work/$name-$round"
  "$@" "${args[@]}" --out "$out" 2>/dev/null
  /usr/bin/python3 - "$out/log.jsonl" >> "$work/$name.txt" <<'PY'
import json, sys
rates = [json.loads(l)["img_per_s"] for l in open(sys.argv[1]) if '"img_per_s"' in l][1:]
print("\n".join(str(r) for r in rates))
PY
}
for round in $(seq "$rounds"); do
  OMP_NUM_THREADS=1 run p1t1 "$ddpm" train
  OMP_NUM_THREADS=2 run p1t2 "$ddpm" train
  OMP_NUM_THREADS=1 run p2t1 mpirun -np 2 --bind-to core "$ddpm" train
done
/usr/bin/python3 - "$work" <<'PY'
import statistics, sys
d = sys.argv[1]
med = {k: statistics.median(float(x) for x in open(f"{d}/{k}.txt").read().split()) for k in ("p1t1", "p1t2", "p2t1")}
print(f"{'setup':<34}{'img/s (median)':>16}{'vs 1x1':>9}")
for k, name in (("p1t1", "1 process x 1 thread"), ("p1t2", "1 process x 2 threads"), ("p2t1", "mpirun -np 2, 1 thread each")):
    print(f"{name:<34}{med[k]:>16.1f}{med[k] / med['p1t1']:>9.2f}")
print(f"MPI scaling efficiency (2 processes vs 2 x one): {med['p2t1'] / (2 * med['p1t1']):.2f}")
print(f"2 processes against 2 threads: {med['p2t1'] / med['p1t2']:.2f}x")
PY
