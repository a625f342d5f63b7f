#!/usr/bin/env bash
# One call on the GPU machine (Python 3.12, torch 2.11, torch-geometric preinstalled, no network):
# the method comparison on the shipped Helsinki data — shortest path, Markov chain, HOSER-style
# beam search, autoregressive decoding of our backbone (block size 1, trained here with the same
# preset), TrajDLM (the shipped default model, or one trained here) and its sampling ablations;
# 5,000 trips x 3 seeds, HOSER protocol — plus the throughput sweep at batch 1, 16, 256, 4096.
# Files in $OUT (at most 8):
#   bench.json, bench.md    every method x metric, throughput, speed-ups (rewritten after every
#                           method, so a run stopped by the time limit still returns what it did)
#   trajdlm_ar.tar.gz       the AR baseline model folder
#   trajdlm_default.tar.gz  only with TRAJ_MODEL=train: the new default model folder (for
#                           packages/traj/src/difforge/traj/weights/default/)
#   trajdlm_ablations.tar.gz  only with TRAJ_ABLATIONS=1: the no_encoder and block16 folders
#   train_logs.tar.gz       tensorboard logs (if installed) and train_config.json of the runs
#   env.txt, run.log        card, package versions, the whole console output
#
# Run from the repository root through the device tool with carry [".whl"], where .whl/ holds
# diffusers-0.42.1-py3-none-any.whl and .whl/traj/ the wheels below (installed only if missing):
#   python -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl/traj pandas==2.3.3 pyproj==3.7.2 python-dateutil==2.9.0.post0 pytz==2025.2 \
#     tzdata==2025.2 six==1.17.0 certifi==2025.10.5
#   command: bash packages/traj/scripts/gpu_run.sh
# Budget: about 8 minutes on one H100 with the defaults (the H200 trained the default preset at
# about 16 steps/s: 4,000 steps in 250 s).
# Options (environment):
#   TRAJ_MODEL      "default" (the shipped model, default), "train" (train a new default first,
#                   TRAJ_STEPS steps, +4-5 min) or a model folder
#   TRAJ_AR_STEPS   training steps of the AR baseline (3000; the shipped default had 4000)
#   TRAJ_N, TRAJ_SEEDS   trips per method and seed (5000), seeds ("0 1 2")
#   TRAJ_ABLATIONS=1     also train the no-road-encoder and block-16 models (TRAJ_STEPS steps each,
#                        beside the others) and score them as extra rows
#   TRAJ_TRAIN_LIMIT_S   stop every training after this many seconds (exported as it stands)
#   TRAJ_ASTAR=1         add HOSER's A* search (slow: Python best-first search)
#   TRAJ_DATA       shipped dataset to train and score on (helsinki_drive_dua, the shipped
#                   model's); with another one use TRAJ_MODEL=train, e.g.
#                   TRAJ_DATA=helsinki_drive TRAJ_MODEL=train
#   TRAJ_CONFIG / TRAJ_DEVICE / TRAJ_BATCHES / TRAJ_REQUESTS / TRAJ_SITE / TRAJ_WORK: to check the
#                        script on a CPU with the tiny preset
set -euo pipefail
OUT=${OUT:-/tmp/traj_out}
mkdir -p "$OUT"
exec > >(tee "$OUT/run.log") 2>&1

source packages/traj/scripts/gpu_env.sh  # wheels, PYTHONPATH

MODEL=${TRAJ_MODEL:-default}
STEPS=${TRAJ_STEPS:-4000}
AR_STEPS=${TRAJ_AR_STEPS:-3000}
N=${TRAJ_N:-5000}
SEEDS=${TRAJ_SEEDS:-0 1 2}
CONFIG=${TRAJ_CONFIG:-default}
DEVICE=${TRAJ_DEVICE:-cuda}
BATCHES=${TRAJ_BATCHES-1 16 256 4096}  # TRAJ_BATCHES="" skips the sweep
REQUESTS=${TRAJ_REQUESTS:-256}
METHODS="real_trips shortest_path modal_route markov hoser_beam ar_decoding trajdlm"
if [ "${TRAJ_ASTAR:-0}" = 1 ]; then METHODS="$METHODS hoser_astar"; fi
DATA=packages/traj/src/difforge/traj/datasets/${TRAJ_DATA:-helsinki_drive_dua}
WORK=${TRAJ_WORK:-/tmp/traj_gpu}
rm -rf "$WORK"
mkdir -p "$WORK"
traj() { python3 -m difforge.traj.cli "$@"; }

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no nvidia-smi"
  python3 -c "import sys, torch, torch_geometric, diffusers, pandas, scipy, pyproj; print(sys.version.split()[0], 'torch', torch.__version__, 'pyg', torch_geometric.__version__, 'diffusers', diffusers.__version__, 'pandas', pandas.__version__, 'pyproj', pyproj.__version__)"
  echo "installed from .whl/traj: ${extra[*]:-none}"
  git log -1 --format='commit %H %s' 2>/dev/null || true
} | tee "$OUT/env.txt"

SECONDS=0
# Every model this call trains shares the GPU at the same time (small models leave it mostly
# idle, so together they take little longer than the slowest alone); each stops at its step count
# or at TRAJ_TRAIN_LIMIT_S seconds, whichever comes first (exported with the steps it reached).
LIMIT=${TRAJ_TRAIN_LIMIT_S:-100000}
pids=()
train_bg() {  # train_bg NAME OVERRIDES...: one model into $WORK/NAME, console in $WORK/NAME.log
  local name=$1; shift
  traj train --data "$DATA" --out "$WORK/$name" --config "$CONFIG" "time_limit_s=$LIMIT" "$@" \
    > "$WORK/$name.log" 2>&1 &
  pids+=($!)
}
if [ "$MODEL" = train ]; then train_bg default "train.steps=$STEPS"; fi
train_bg ar model.block_size=1 "train.steps=$AR_STEPS"
extra_models=()
if [ "${TRAJ_ABLATIONS:-0}" = 1 ]; then
  train_bg no_encoder model.road_encoder=false "train.steps=$STEPS"
  train_bg block16 model.block_size=16 "train.steps=$STEPS"
  extra_models=(--extra-model "trajdlm (no road encoder)=$WORK/no_encoder" --extra-model "trajdlm (block size 16)=$WORK/block16")
fi
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
tail -n 3 "$WORK"/*.log
[ "$failed" = 0 ] || { echo "[gpu_run] a training failed"; exit 1; }
echo "[gpu_run] models trained after ${SECONDS} s"
tar -C "$WORK/ar" --exclude=train -czf "$OUT/trajdlm_ar.tar.gz" .
if [ "$MODEL" = train ]; then
  tar -C "$WORK/default" --exclude=train -czf "$OUT/trajdlm_default.tar.gz" .
  MODEL=$WORK/default
fi
if [ "${TRAJ_ABLATIONS:-0}" = 1 ]; then
  tar -C "$WORK" --exclude=train -czf "$OUT/trajdlm_ablations.tar.gz" no_encoder block16
fi
# shellcheck disable=SC2046
(cd "$WORK" && tar -czf "$OUT/train_logs.tar.gz" $(ls -d ./*/train/logs ./*/train/train_config.json 2>/dev/null))

# shellcheck disable=SC2086
traj bench --model "$MODEL" --ar-model "$WORK/ar" --data "$DATA" --out-dir "$OUT" \
  --hoser-save "$WORK/hoser_model" --n "$N" --seeds $SEEDS --batch-size 256 --device "$DEVICE" \
  --ablations "${extra_models[@]}" --methods $METHODS --throughput-batches $BATCHES \
  --throughput-requests "$REQUESTS"
echo "[gpu_run] done after ${SECONDS} s"
