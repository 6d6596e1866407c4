#!/usr/bin/env bash
# Data-parallel training over MPI (mpirun -np 2, one OpenMP thread per process):
#  1. equivalence: 2 processes at global batch 16 log the losses of 1 process at batch 16 with the
#     same seed to LOSS_RTOL at every step (the same data, noise and dropout masks; a wrong shard
#     is off by ~1e-2), and reach after 20 steps its weights to within BOUND;
#  2. replicas: every rank reports the same weights checksum, and the run's log says rank 0 found
#     them identical at each checkpoint;
#  3. resume on a different number of processes: the 2-process run continues on 1 and the
#     1-process run on 2, and both land within BOUND of the 1-process run of 30 steps;
#  4. faults: SIGKILL of rank 1 stops the job within TIMEOUT seconds with a message on rank 0 that
#     names the intact checkpoint, and that checkpoint resumes on 1 process;
#  5. sampling, eval fd and eval nll over 2 processes: the same images, byte for byte, as one
#     process with the same batches, one fd report, and the same nll report to the last digit.
# Usage: mpi_train_test.sh DDPM_BINARY COMPARE_SCRIPT MODEL_DIR
set -euo pipefail
ddpm=$1
compare=$2
model=$3
# Float rounding of the gradient summation order, which Adam turns into weight differences of up to
# lr per step for parameters whose gradients are near zero (the 1e-10-scaled initial convolutions):
# one process on 2 threads instead of 1 differs from itself by 1.3e-4 after these 20 steps, and
# P=2 from P=1 by 1.1e-4 (20 steps) and 1.7e-4 / 3.3e-4 (30 steps, resumed). Bound: lr = 1e-3.
# The losses (same data, noise, dropout) agree to 1e-6 relative (measured 9.4e-7 by step 20); a
# shard with the wrong images or masks is off by ~1e-2 at the first step.
BOUND=1e-3
LOSS_RTOL=1e-5
TIMEOUT=60     # seconds from the kill to the job's end
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=1
# Root in containers and CI; no pinning (tests share the machine); shared memory without ptrace.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
mpirun2=(mpirun -np 2 --oversubscribe --bind-to none)
common=(--data fashion-mnist --config fmnist-small --batch 16 --lr 1e-3 --warmup 5 --seed 3
        --final-samples 0 --log-every 1)

echo "== 1. equivalence: P=1 and P=2 at global batch 16, 20 steps"
"$ddpm" train "${common[@]}" --steps 20 --save-every 10 --out "$work/p1" 2>"$work/p1.err"
"${mpirun2[@]}" "$ddpm" train "${common[@]}" --steps 20 --save-every 10 --out "$work/p2" 2>"$work/p2.err"
/usr/bin/python3 "$compare" "$work/p1" "$work/p2" --max-abs $BOUND --loss-rtol $LOSS_RTOL

echo "== 2. replicas"
grep "weights checksum" "$work/p2.err"
sums=$(grep -o "weights checksum [0-9a-f]*" "$work/p2.err" | sort -u | wc -l)
ranks=$(grep -c "weights checksum" "$work/p2.err")
[ "$ranks" = 2 ] || { echo "expected 2 ranks' checksums, got $ranks"; exit 1; }
[ "$sums" = 1 ] || { echo "the ranks' weights differ"; exit 1; }
checks=$(grep -c '"replicas_identical":2' "$work/p2/log.jsonl")
[ "$checks" = 2 ] || { echo "expected 2 replica checks (steps 10, 20) in the log, got $checks"; exit 1; }
[ ! -e "$work/p2/samples/final.png" ] || true
lines=$(grep -c '"step"' "$work/p2/log.jsonl")
[ "$lines" -ge 20 ] && [ "$lines" -le 23 ] || { echo "rank 0 alone should log (20 step lines + checks), got $lines"; exit 1; }

echo "== 3. resume on another number of processes"
"$ddpm" train "${common[@]}" --steps 30 --save-every 10 --out "$work/p1-30" 2>/dev/null
"$ddpm" train --resume "$work/p2" --steps 30 --final-samples 0 2>/dev/null
/usr/bin/python3 "$compare" "$work/p1-30" "$work/p2" --max-abs $BOUND
"${mpirun2[@]}" "$ddpm" train --resume "$work/p1" --steps 30 --final-samples 0 2>/dev/null
/usr/bin/python3 "$compare" "$work/p1-30" "$work/p1" --max-abs $BOUND

echo "== 4. SIGKILL of rank 1"
"${mpirun2[@]}" "$ddpm" train "${common[@]}" --steps 100000 --save-every 5 --out "$work/kill" 2>"$work/kill.err" &
job=$!
for _ in $(seq 600); do
  [ -e "$work/kill/training_state.safetensors" ] && break
  kill -0 "$job" 2>/dev/null || { echo "the job ended before its first checkpoint:"; cat "$work/kill.err"; exit 1; }
  sleep 0.1
done
[ -e "$work/kill/training_state.safetensors" ] || { echo "no checkpoint after 60 s"; cat "$work/kill.err"; exit 1; }
sleep 2
victim=""
for pid in $(pgrep -f "train .*--out $work/kill"); do
  if tr '\0' '\n' < /proc/"$pid"/environ 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1"; then victim=$pid; fi
done
[ -n "$victim" ] || { echo "rank 1 not found"; exit 1; }
kill -9 "$victim"
killed_at=$(date +%s)
rc=0
for _ in $(seq $((TIMEOUT * 10))); do
  kill -0 "$job" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$job" 2>/dev/null; then
  echo "the job still runs $TIMEOUT s after rank 1 was killed"
  pkill -9 -f "train .*--out $work/kill" || true
  exit 1
fi
wait "$job" || rc=$?
echo "mpirun exited with status $rc $(( $(date +%s) - killed_at )) s after the kill"
[ "$rc" != 0 ] || { echo "mpirun exited 0 after a rank was killed"; exit 1; }
cat "$work/kill.err" | tr '\r' '\n' | grep -v "^train \[" | tail -20
grep -q "rank 0 of 2 stopped by mpirun" "$work/kill.err" || { echo "no message from rank 0"; exit 1; }
grep -q "is intact: continue with ddpm train --resume" "$work/kill.err" || { echo "no resume hint"; exit 1; }
step=$(/usr/bin/python3 -c "import json,struct,sys; f=open(sys.argv[1],'rb'); n=struct.unpack('<Q',f.read(8))[0]; print(json.loads(f.read(n))['__metadata__']['step'])" "$work/kill/training_state.safetensors")
echo "checkpoint at step $step; resuming on 1 process to step $((step + 5))"
"$ddpm" train --resume "$work/kill" --steps $((step + 5)) --final-samples 0 2>"$work/resume.err"
grep -q "resuming" "$work/resume.err"
echo "== 5. sampling and eval fd over 2 processes"
"$ddpm" sample --model "$model" --n 7 --batch 2 --sampler ddpm --steps 10 --seed 4 --out "$work/s1.png" \
  --npy "$work/s1.npy" 2>/dev/null
"${mpirun2[@]}" "$ddpm" sample --model "$model" --n 7 --batch 2 --sampler ddpm --steps 10 --seed 4 \
  --out "$work/s2.png" --npy "$work/s2.npy" 2>/dev/null
cmp "$work/s1.npy" "$work/s2.npy"
echo "sample: 7 images in batches of 2 over 2 processes are byte-identical to one process's"
"${mpirun2[@]}" "$ddpm" eval fd --model "$model" --n 6 --batch 2 --steps 5 --no-reference \
  --classifier "$model/../fmnist-classifier" > "$work/fd.txt" 2>/dev/null
cat "$work/fd.txt"
[ "$(grep -c "FD" "$work/fd.txt")" = 1 ] || { echo "expected one eval fd report"; exit 1; }
"$ddpm" eval nll --model "$model" --n 3 --batch 1 > "$work/nll1.txt" 2>/dev/null
"${mpirun2[@]}" "$ddpm" eval nll --model "$model" --n 3 --batch 1 > "$work/nll2.txt" 2>/dev/null
head -5 "$work/nll2.txt"
diff "$work/nll1.txt" "$work/nll2.txt"
echo "eval nll: 3 images (all 1000 terms) over 2 processes print one process's report exactly"
if "${mpirun2[@]}" "$ddpm" info --model "$model" > "$work/info.txt" 2>&1; then
  echo "info under mpirun should refuse"; exit 1
fi
grep -q "runs in one process; launch it without mpirun" "$work/info.txt"
echo "all data-parallel checks passed"
