#!/usr/bin/env bash
# One call on the GPU machine (one H100/H200, Python 3.12, torch 2.11, no network): the whole
# scene pipeline from seeds, each stage under a hard time limit, results rewritten after every
# stage. Writes to $OUT:
#   default/      the model folder (config.json, decoder/, vae/, diffusion/): copy it to
#                 packages/scene/src/difforge/scene/weights/default
#   results.json  every stage's report (fits, VAE, diffusion, evaluation, seams, ablation, times)
#   results.md    the same as tables, card and date named
#   scene.png     a generated 2x2 scene expanded by one column (+x), rendered on the CPU
#   log.txt
# Stages: datasets -> tri-plane fit stage 1 (decoder + planes, FIT1_N blocks) -> stage 2 (frozen
# decoder, N_TRAIN blocks) -> VAE -> latent diffusion -> evaluation vs retrieval (+ seams with vs
# without overlap conditioning) -> demo scene. ABLATIONS=1 adds the paper's ablations: a VAE with
# one global latent vector of the same size (reconstruction, as the paper's Table 4), raw
# tri-plane diffusion and diffusion on that latent vector, with their evaluations; the vector VAE
# and both ablation diffusion models train under exactly the time limits the latent tri-plane VAE
# and DiT had (after any cut to fit TOTAL_S), so the comparison is at equal budget.
# As a second call on a still-warm machine use REUSE=1: stages whose outputs exist in $WORK are
# skipped.
# Run from the repository root with .whl (diffusers, trimesh wheels) carried:
#   bash packages/scene/scripts/gpu_run.sh
# Default limits, from the H200 runs of 2026-11-27 (python start-up ~15 s per command; fit stage 1
# of 64 blocks 52 s; stage 2 of 160 blocks 68 s, 27 s of it targets, 20 s fitting; VAE 54 s with
# 30 s of training): expected ~20 s set-up, ~20 s datasets (both at once), ~52 s fit 1, ~95 s fit 2
# (256 blocks), 60 s VAE, 125 s diffusion, then evaluation and the demo scene under their caps:
# at most TOTAL_S=500 s (8 min 20 s). VAE_LIMIT_S / DIF_LIMIT_S bound those whole commands
# (start-up included): training stops itself in time to evaluate and save.
# CPU dry run (tiny presets, no install), about 2 minutes on 2 cores:
#   PRESET=tiny DEVICE=cpu PY=.venv/bin/python OUT=/tmp/scene_out bash packages/scene/scripts/gpu_run.sh
set -uo pipefail

OUT=${OUT:-/tmp/scene_out}
WORK=${WORK:-/tmp/scene_work}
PRESET=${PRESET:-default}
DEVICE=${DEVICE:-cuda}
PY=${PY:-python3}
ABLATIONS=${ABLATIONS:-0}
REUSE=${REUSE:-0}
CORES=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
WORKERS=${WORKERS:-$(( CORES > 1 ? CORES - 1 : 1 ))}

if [ "$PRESET" = tiny ]; then
  N_TRAIN=${N_TRAIN:-24}; N_TEST=${N_TEST:-12}; FIT1_N=${FIT1_N:-12}; RES=${RES:-16}
  FIT_ARGS=${FIT_ARGS:-"--channels 4 --plane-resolution 8 --hidden 16 --layers 1 --points-per-step 128 --surface-points 1024 --space-points 1024 --keep-surface 256 --eval-blocks 1 --eval-points 2000"}
  FIT1_ITERS=${FIT1_ITERS:-30}; FIT2_ITERS=${FIT2_ITERS:-20}
  CONFIG=tiny; EVAL_N=${EVAL_N:-4}; SEAMS=${SEAMS:-2}; GEN_ARGS=${GEN_ARGS:-"--steps 4"}
  VAE_OVR=${VAE_OVR:-"eval_blocks=2"}; DIF_OVR=${DIF_OVR:-""}
  VAE_LIMIT_S=${VAE_LIMIT_S:-60}; DIF_LIMIT_S=${DIF_LIMIT_S:-60}
else
  N_TRAIN=${N_TRAIN:-256}; N_TEST=${N_TEST:-200}; FIT1_N=${FIT1_N:-64}; RES=${RES:-64}
  FIT_ARGS=${FIT_ARGS:-"--points-per-step 2048 --surface-points 30000 --space-points 30000 --eval-blocks 4 --eval-points 30000"}
  FIT1_ITERS=${FIT1_ITERS:-500}; FIT2_ITERS=${FIT2_ITERS:-300}
  CONFIG=default; EVAL_N=${EVAL_N:-50}; SEAMS=${SEAMS:-16}; GEN_ARGS=${GEN_ARGS:-""}
  VAE_OVR=${VAE_OVR:-"eval_blocks=4 eval_points=20000"}; DIF_OVR=${DIF_OVR:-""}
  VAE_LIMIT_S=${VAE_LIMIT_S:-60}; DIF_LIMIT_S=${DIF_LIMIT_S:-125}
fi
# Hard limits (seconds) per stage; a stage that hits one is reported and the run goes on. No
# stage runs past TOTAL_S after the start (stages are cut short, or skipped, to end in time).
# The two training stages get MARGIN_S beyond their own time limit before they are killed.
T_DATA=${T_DATA:-40}; T_FIT1=${T_FIT1:-75}; T_FIT2=${T_FIT2:-120}; T_EVAL=${T_EVAL:-80}
T_DEMO=${T_DEMO:-50}; TOTAL_S=${TOTAL_S:-500}; MARGIN_S=${MARGIN_S:-15}

mkdir -p "$OUT" "$WORK"
exec > >(tee "$OUT/log.txt") 2>&1

if [ "$DEVICE" = cuda ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD/shared/src:$PWD/packages/scene/src
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
fi
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
SCENE="$PY -m difforge.scene.cli"
REPORT="$PY packages/scene/scripts/gpu_results.py --work $WORK --out $OUT"
# In the background: one python start-up (~15 s on the GPU machine) less on the critical path.
$PY -c "import torch, diffusers, trimesh, skimage; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'trimesh', trimesh.__version__)" &

# stage NAME LIMIT CMD...: run under a hard time limit, record status and seconds, refresh results.
stage() {
  local name=$1 limit=$2; shift 2
  local start=$SECONDS
  local left=$(( TOTAL_S - SECONDS ))
  if [ "$left" -lt 10 ]; then
    echo "== $name: skipped (${left}s left of TOTAL_S=${TOTAL_S})"
    printf '%s\t%s\t%s\n' "$name" "skipped" 0 >> "$WORK/stages.tsv"
    return 1
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  if [ "$REUSE" = 1 ] && [ -n "${DONE[$name]:-}" ] && [ -e "${DONE[$name]}" ]; then
    echo "== $name: reusing ${DONE[$name]}"
    return 0
  fi
  echo "== $name (limit ${limit}s) at ${start}s"
  timeout --signal=TERM --kill-after=10 "$limit" "$@"
  local rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(( SECONDS - start ))" >> "$WORK/stages.tsv"
  echo "   $name: exit $rc after $(( SECONDS - start ))s (total ${SECONDS}s)"
  $REPORT
  return $rc
}

# budget WANT RESERVE: seconds for a training command, at most WANT, leaving RESERVE seconds for
# what follows; at least 30 (start-up, loading and one step: less could not write a model).
budget() {
  local left=$(( TOTAL_S - SECONDS - $2 ))
  local t=$(( $1 < left ? $1 : left ))
  echo $(( t > 30 ? t : 30 ))
}

# recorded_limit FILE KEYS DEFAULT: the time_limit_s a finished training stage recorded in its
# JSON (integer seconds), else DEFAULT.
recorded_limit() {
  $PY -c "import json, sys
try: print(int(json.load(open(sys.argv[1]))$2))
except (OSError, KeyError, ValueError): print(sys.argv[2])" "$1" "$3"
}

# What each stage leaves behind (REUSE=1 skips a stage whose output exists).
declare -A DONE=([datasets]="$WORK/test/dataset.json" [fit1]="$WORK/fit1/fit.json"
  [fit2]="$WORK/fit2/fit.json" [vae]="$WORK/vae/metrics.json" [diffusion]="$WORK/model/config.json"
  [evaluate]="$WORK/eval.json")
if [ "$REUSE" != 1 ]; then
  rm -rf "$WORK"/{train,test,fit1,fit2,vae,vae_vector,model,raw,vector,demo,demo_x} "$WORK"/*-run \
    "$WORK"/*.json "$WORK"/demo.glb
  : > "$WORK/stages.tsv"
fi
# Both datasets at once: each command is mostly python start-up.
stage datasets "$T_DATA" bash -c "$SCENE dataset --n $N_TRAIN --seed 1000 --out $WORK/train \
  --resolution $RES --no-sdf & train=\$!; $SCENE dataset --n $N_TEST --seed 2000 \
  --out $WORK/test --resolution $RES --no-sdf; test=\$?; wait \$train && exit \$test"

stage fit1 "$T_FIT1" $SCENE fit --data "$WORK/train" --first "$FIT1_N" --out "$WORK/fit1" \
  --iterations "$FIT1_ITERS" $FIT_ARGS --device "$DEVICE" --workers "$WORKERS"

stage fit2 "$T_FIT2" $SCENE fit --data "$WORK/train" --decoder "$WORK/fit1/decoder" \
  --out "$WORK/fit2" --iterations "$FIT2_ITERS" $FIT_ARGS --device "$DEVICE" --workers "$WORKERS"
FITS="$WORK/fit2"
[ -f "$WORK/fit2/fit.json" ] || { echo "   stage 2 missing: training on the stage-1 fit"; FITS="$WORK/fit1"; }

# time_limit_s bounds each training command from its start (training stops itself in time to
# evaluate and save; each phase prints a stamped line); the later stages' limits are reserved out
# of TOTAL_S.
VAE_T=$(budget "$VAE_LIMIT_S" $(( MARGIN_S + DIF_LIMIT_S + MARGIN_S + T_EVAL + T_DEMO )))
stage vae $(( VAE_T + MARGIN_S )) $SCENE train-vae --fit $FITS --out "$WORK/vae" \
  --config "$CONFIG" time_limit_s="$VAE_T" $VAE_OVR

DIF_T=$(budget "$DIF_LIMIT_S" $(( MARGIN_S + T_EVAL + T_DEMO )))
stage diffusion $(( DIF_T + MARGIN_S )) $SCENE train --fit $FITS --vae "$WORK/vae" \
  --out "$WORK/model" --config "$CONFIG" time_limit_s="$DIF_T" $DIF_OVR
[ -f "$WORK/model/config.json" ] && rm -rf "$OUT/default" && cp -r "$WORK/model" "$OUT/default" \
  && du -sh "$OUT/default"
# The ablations below train at exactly these budgets (a reused stage's own recorded limit: it
# may have been cut to fit TOTAL_S in an earlier call).
VAE_T=$(recorded_limit "$WORK/vae/metrics.json" "['time_limit_s']" "$VAE_T")
DIF_T=$(recorded_limit "$WORK/model/config.json" "['training']['config']['time_limit_s']" "$DIF_T")

stage evaluate "$T_EVAL" $SCENE evaluate --model "$WORK/model" --train "$WORK/train" \
  --test "$WORK/test" --out "$WORK/eval.json" --n-eval "$EVAL_N" --seams "$SEAMS" \
  --device "$DEVICE" --workers "$WORKERS" $GEN_ARGS

stage demo "$T_DEMO" bash -c "$SCENE generate --model $WORK/model --blocks 2x2 --seed 7 \
  --out $WORK/demo.glb --device $DEVICE $GEN_ARGS && $SCENE expand --scene $WORK/demo \
  --direction=+x --out $WORK/demo_x --png --device $DEVICE $GEN_ARGS \
  && cp $WORK/demo_x/scene.png $OUT/scene.png"

if [ "$ABLATIONS" = 1 ]; then
  stage vae_vector $(( VAE_T + MARGIN_S )) $SCENE train-vae --fit $FITS --out "$WORK/vae_vector" \
    --config "$CONFIG" time_limit_s="$VAE_T" model.vector_latent=true $VAE_OVR
  stage raw_diffusion $(( DIF_T + MARGIN_S )) $SCENE train --fit $FITS --vae raw \
    --out "$WORK/raw" --config "$CONFIG" time_limit_s="$DIF_T" model.patch_size=8 $DIF_OVR
  stage raw_evaluate "$T_EVAL" $SCENE evaluate --model "$WORK/raw" --train "$WORK/train" \
    --test "$WORK/test" --out "$WORK/eval_raw.json" --n-eval "$EVAL_N" --seams 0 \
    --device "$DEVICE" --workers "$WORKERS" $GEN_ARGS
  # Diffusion on the single latent vector (same DiT and budget; no expansion: nothing overlaps).
  stage vector_diffusion $(( DIF_T + MARGIN_S )) $SCENE train --fit $FITS \
    --vae "$WORK/vae_vector" --out "$WORK/vector" --config "$CONFIG" time_limit_s="$DIF_T" \
    $DIF_OVR
  stage vector_evaluate "$T_EVAL" $SCENE evaluate --model "$WORK/vector" --train "$WORK/train" \
    --test "$WORK/test" --out "$WORK/eval_vector.json" --n-eval "$EVAL_N" --seams 0 \
    --device "$DEVICE" --workers "$WORKERS" $GEN_ARGS
fi
echo "== all done at ${SECONDS}s"
