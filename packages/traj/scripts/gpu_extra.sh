#!/usr/bin/env bash
# One call on the GPU machine (Python 3.12, torch 2.11, torch-geometric preinstalled, no network),
# within 9.5 minutes on one H100, every stage under a hard time limit:
#   (a) scaling: benchmarks/scaling.py on Helsinki (294 segments) and the synthetic 5k and 40k
#       cities, default preset: training ms/step, sampling trips/s at batch 256, peak memory;
#   (b) second city: a TrajDLM trained here on berlin_adlershof_drive (default preset,
#       TRAJ_STEPS steps), scored with shortest path, Markov chain and the HOSER-style beam search
#       by `difforge-traj bench` (HOSER protocol, TRAJ_N trips per seed, same requests);
#   (c) zero-shot bicycles: the shipped car-trained default vs a model trained here on the
#       helsinki_bike_on_drive train split (same preset, TRAJ_STEPS steps), plus shortest path and
#       Markov, on helsinki_bike_on_drive's test set (the same segment vocabulary).
# The two trainings of (b) and (c) share the GPU at the same time (small models leave it mostly
# idle); every timed stage (scaling, benches) runs alone.
# Files in $OUT: results.json, results.md (rewritten after every stage: a stage stopped by its time
# limit keeps what the stages before it and its own partial bench.json returned), run.log.
#
# Run from the repository root through the device tool with carry [".whl"] (the wheels of
# scripts/gpu_run.sh: .whl/diffusers-*.whl and .whl/traj/*.whl):
#   command: bash packages/traj/scripts/gpu_extra.sh
# Options (environment):
#   TRAJ_STEPS         training steps of the Berlin and bicycle models (1000; the shipped car
#                      default had 4000)
#   TRAJ_N, TRAJ_SEEDS trips per method and seed (5000), seeds ("0")
#   TRAJ_SWEEP         batch size of the benches' TrajDLM throughput sweep (256)
#   TRAJ_CONFIG / TRAJ_DEVICE / TRAJ_SCALING (extra scaling.py arguments) / TRAJ_HOSER_EPOCHS /
#   TRAJ_LIMIT_SCALE (multiplies every time limit) / TRAJ_SITE / TRAJ_WORK: to check the script on
#   a CPU with the tiny preset, e.g.
#     TRAJ_CONFIG=tiny TRAJ_DEVICE=cpu TRAJ_STEPS=20 TRAJ_N=100 TRAJ_HOSER_EPOCHS=1 TRAJ_SWEEP=8 TRAJ_LIMIT_SCALE=4 \
#     TRAJ_SCALING="--cities helsinki grid6 --train-steps 2 --batch-size 8 --requests 16 --trips 200" \
#     PATH=.venv/bin:$PATH TRAJ_SITE=/tmp/site_dry OUT=/tmp/extra_out bash packages/traj/scripts/gpu_extra.sh
set -euo pipefail
OUT=${OUT:-/tmp/traj_extra_out}
mkdir -p "$OUT"
exec > >(tee "$OUT/run.log") 2>&1

source packages/traj/scripts/gpu_env.sh  # wheels, PYTHONPATH

STEPS=${TRAJ_STEPS:-1000}
N=${TRAJ_N:-5000}
SEEDS=${TRAJ_SEEDS:-0}
CONFIG=${TRAJ_CONFIG:-default}
DEVICE=${TRAJ_DEVICE:-cuda}
HOSER_EPOCHS=${TRAJ_HOSER_EPOCHS:-25}
SCALE=${TRAJ_LIMIT_SCALE:-1}
SWEEP=${TRAJ_SWEEP:-256}
DATASETS=packages/traj/src/difforge/traj/datasets
WORK=${TRAJ_WORK:-/tmp/traj_extra}
rm -rf "$WORK"
mkdir -p "$WORK"
TRAJ=(python3 -m difforge.traj.cli)

python3 -c "import sys, torch, torch_geometric; print(sys.version.split()[0], 'torch', torch.__version__, 'pyg', torch_geometric.__version__)"
CARD=$(python3 -c "import torch; print(torch.cuda.get_device_name() if '$DEVICE'.startswith('cuda') else 'CPU')")
echo "card: $CARD; installed from .whl/traj: ${extra[*]:-none}; $(date -u)"

report() {
  python3 packages/traj/benchmarks/gpu_extra_report.py --work "$WORK" --out "$OUT" --card "$CARD" \
    || echo "[gpu_extra] report failed"
}
# stage NAME LIMIT_S COMMAND...: run under a hard time limit, record its status, rewrite results
stage() {
  local name=$1 limit=$(($2 * SCALE)) start=$SECONDS rc=0
  shift 2
  echo "[gpu_extra] $name (limit ${limit} s), ${SECONDS} s so far"
  timeout --kill-after=10 "$limit" "$@" || rc=$?
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" $((SECONDS - start)) "$limit" >>"$WORK/stages.tsv"
  report
}

SECONDS=0
# shellcheck disable=SC2086
stage scaling 130 python3 packages/traj/benchmarks/scaling.py --config "$CONFIG" --device "$DEVICE" \
  --out-dir "$WORK" --stem scaling ${TRAJ_SCALING:-}

# (b) and (c) training side by side; the bicycle model's console output follows Berlin's
bike_limit=$((170 * SCALE))
bike_start=$SECONDS
timeout --kill-after=10 "$bike_limit" "${TRAJ[@]}" train \
  --data "$DATASETS/helsinki_bike_on_drive" --out "$WORK/bike_model" --config "$CONFIG" \
  "train.steps=$STEPS" train.tensorboard=false train.progress=false >"$WORK/bike_train.log" 2>&1 &
bike_pid=$!
stage berlin_train 170 "${TRAJ[@]}" train --data "$DATASETS/berlin_adlershof_drive" --out "$WORK/berlin_model" \
  --config "$CONFIG" "train.steps=$STEPS" train.tensorboard=false train.progress=false
bike_rc=0
wait "$bike_pid" || bike_rc=$?
cat "$WORK/bike_train.log"
printf '%s\t%s\t%s\t%s\n' bike_train "$bike_rc" $((SECONDS - bike_start)) "$bike_limit" >>"$WORK/stages.tsv"
report

# TrajDLM's throughput sweep: one batch size (bench needs at least one)
common=(--n "$N" --seeds $SEEDS --batch-size 256 --device "$DEVICE" --throughput-batches "$SWEEP"
  --throughput-requests "$SWEEP")
# the HOSER-style model trains before its bench starts: its own stage, so a slow training
# cannot cost the other methods' results
if [ -f "$WORK/berlin_model/config.json" ]; then
  stage berlin_bench 75 "${TRAJ[@]}" bench --model "$WORK/berlin_model" --data "$DATASETS/berlin_adlershof_drive" \
    --out-dir "$WORK/berlin" --methods trajdlm shortest_path markov "${common[@]}"
  stage berlin_hoser 85 "${TRAJ[@]}" bench --model "$WORK/berlin_model" --data "$DATASETS/berlin_adlershof_drive" \
    --out-dir "$WORK/berlin_hoser" --methods hoser_beam --hoser-epochs "$HOSER_EPOCHS" \
    --hoser-save "$WORK/hoser_berlin" "${common[@]}"
fi

bike_model=()
if [ -f "$WORK/bike_model/config.json" ]; then
  bike_model=(--extra-model "trajdlm (trained on bicycles here)=$WORK/bike_model")
fi
stage zero_shot 60 "${TRAJ[@]}" bench --model default --data "$DATASETS/helsinki_bike_on_drive" \
  --out-dir "$WORK/zero_shot" --methods trajdlm shortest_path markov "${bike_model[@]}" "${common[@]}"
echo "[gpu_extra] done after ${SECONDS} s"
cat "$OUT/results.md"
