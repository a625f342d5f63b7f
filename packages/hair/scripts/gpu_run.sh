#!/usr/bin/env bash
# One call on the GPU machine (one H100/H200, Python 3.12, torch 2.11): train the default hair
# model (strand codec, then the scalp-texture DiT) on procedural styles generated from seeds,
# evaluate it beside the mean-groom and retrieval baselines on held-out styles, time generation,
# and write 8 files to $OUT:
#   default/config.json, default/{codec,diffusion}/{config.json,diffusion_pytorch_model.safetensors}
#     (the model folder: copy it to packages/hair/src/difforge/hair/weights/default)
#   results.json, results.md (evaluation table + generation speed), log.txt
# Run from the repository root with .whl (the diffusers wheel) carried:
#   bash packages/hair/scripts/gpu_run.sh
# Sizes can be changed through the environment (STYLES, CODEC_STYLES, EVAL_N, WORKERS, ...).
# Budget ~9 minutes on an H100: training stops early at CODEC_LIMIT_S / DIFFUSION_LIMIT_S.
# CPU dry run of the Python parts (tiny presets, no install):
#   PY=.venv/bin/python CONFIG=tiny DEVICE=cpu STYLES=4 CODEC_STYLES=3 EVAL_N=1 WORKERS=2 \
#   EVAL_ARGS="--strands 300 --points 16 --image-size 64 --eval-points 2000" OUT=/tmp/o \
#   bash packages/hair/scripts/gpu_run.sh
set -euo pipefail

OUT=${OUT:-/tmp/hair_out}
WORK=${WORK:-/tmp/hair_work}
STYLES=${STYLES:-980}              # diffusion training styles (70 per family), seeds 0..STYLES-1
CODEC_STYLES=${CODEC_STYLES:-280}  # codec training styles (seeds 0..), every 10th held out
EVAL_N=${EVAL_N:-56}               # held-out styles (4 per family)
CORES=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # nproc obeys OMP_NUM_THREADS
CORES=$(( CORES > 32 ? 32 : CORES ))
WORKERS=${WORKERS:-$(( CORES - 1 ))}
CODEC_STEPS=${CODEC_STEPS:-6000}
DIFFUSION_STEPS=${DIFFUSION_STEPS:-8000}
CODEC_LIMIT_S=${CODEC_LIMIT_S:-75}
DIFFUSION_LIMIT_S=${DIFFUSION_LIMIT_S:-180}
PY=${PY:-python3}
CONFIG=${CONFIG:-default}
DEVICE=${DEVICE:-cuda}
EVAL_ARGS=${EVAL_ARGS:-}

mkdir -p "$OUT" "$WORK"
exec > >(tee "$OUT/log.txt") 2>&1

if [ "$DEVICE" = cuda ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD/shared/src:$PWD/packages/hair/src
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
fi
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1  # data workers are processes: one thread each
HAIR="$PY -m difforge.hair.cli"
$PY -c "import torch, diffusers; print('torch', torch.__version__, 'diffusers', diffusers.__version__)"
SECONDS=0

echo "== strand codec: $CODEC_STYLES styles, $CODEC_STEPS steps (limit ${CODEC_LIMIT_S}s)"
$HAIR train-codec --out "$WORK/codec" --config "$CONFIG" \
  data.styles="$CODEC_STYLES" data.workers="$WORKERS" \
  train.steps="$CODEC_STEPS" time_limit_s="$CODEC_LIMIT_S" train.tensorboard=false
echo "   done at ${SECONDS}s"

echo "== scalp diffusion: $STYLES styles, $DIFFUSION_STEPS steps (limit ${DIFFUSION_LIMIT_S}s)"
$HAIR train --codec "$WORK/codec" --out "$WORK/model" --config "$CONFIG" \
  data.styles="$STYLES" data.workers="$WORKERS" \
  train.steps="$DIFFUSION_STEPS" time_limit_s="$DIFFUSION_LIMIT_S" train.tensorboard=false
cp -r "$WORK/model" "$OUT/default"
du -sh "$OUT/default"
echo "   done at ${SECONDS}s"

echo "== evaluation: $EVAL_N held-out styles, baselines fitted on the same $STYLES training styles"
$HAIR evaluate --model "$WORK/model" --n "$EVAL_N" --train "$STYLES" --workers "$WORKERS" \
  --device "$DEVICE" $EVAL_ARGS --out "$OUT/results.json" --md "$OUT/results.md"
echo "   done at ${SECONDS}s"

echo "== generation speed (10,000 strands)"
$PY packages/hair/benchmarks/generate_speed.py --model "$WORK/model" --device "$DEVICE" \
  --md "$OUT/results.md"
OMP_NUM_THREADS=$CORES $PY packages/hair/benchmarks/generate_speed.py --model "$WORK/model" \
  --device cpu --repeats 1 --md "$OUT/results.md"
echo "== all done at ${SECONDS}s"
