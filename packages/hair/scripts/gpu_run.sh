#!/usr/bin/env bash
# The default hair model on the GPU machine (one H100/H200, Python 3.12, torch 2.11, no network),
# in calls that each fit the device tool's 10-minute limit, on one warm machine:
#
#   STAGE=train (default)  styles -> strand codec -> scalp-texture DiT -> conditioning check.
#       The training styles are generated once, in parallel, into $WORK/styles (style folders:
#       strands, picture, density map); the codec trains on its share of them while the rest are
#       generated. The diffusion model gets what is left of TOTAL_S.
#   STAGE=train REUSE=1    the same machine, a later call: styles and codec are reused and the
#       diffusion training resumes from its last checkpoint for another TOTAL_S (exact resume;
#       the cosine schedule runs over DIFFUSION_STEPS in all).
#   STAGE=eval REUSE=1     evaluation of $WORK/model beside the mean-groom and retrieval baselines,
#       which are fitted on the same cached styles (read, not generated again), the conditioning
#       check on CHECK_N held-out and CHECK_N training styles (the memorisation gap), then the
#       generation speed.
#   STAGE=styles           only the training styles (REUSE=1 train calls then read them): the
#       two-GPU smoke test below can run beside it, e.g. `(... smoke ...) & STAGE=styles ...; wait`.
#   STAGE=all              everything in one call (the CPU dry run below).
#   STAGE=bench            DiT training-step time at the preset's batch size with 2x2 and 4x4
#       patches (benchmarks/train_step.py, under a minute): set DIFFUSION_STEPS from it.
#
# Writes to $OUT (each call):
#   default/      the model folder (config.json, codec/, diffusion/): copy it to
#                 packages/hair/src/difforge/hair/weights/default after a good evaluation
#   results.md    conditioning check (train), evaluation table, conditioning checks on held-out
#                 and training styles and generation speed (eval)
#   conditioning.json (held-out styles), conditioning_train.json (eval), results.json, log.txt
# Run from the repository root with .whl (the diffusers wheel) carried:
#   bash packages/hair/scripts/gpu_run.sh                      # call 1
#   REUSE=1 bash packages/hair/scripts/gpu_run.sh              # optional: more diffusion steps
#   STAGE=eval REUSE=1 bash packages/hair/scripts/gpu_run.sh   # the evaluation
# INIT=default (or a model folder): continue training that model's DiT with its codec (no codec
# training; the styles are still generated for the DiT and the baselines), on a fresh schedule of
# DIFFUSION_STEPS, e.g. `INIT=default DIFFUSION_STEPS=18000 bash ...`, then REUSE=1 calls as above.
# EXTRA_STYLES=N: N more training styles of EXTRA_FAMILIES only (default curly,coily,wavy, the
# families the model trails retrieval on most), seeds from STYLES on, into $WORK/styles/extra; the
# DiT trains and the baselines are fitted on them too. Keep it the same in REUSE=1 calls.
# NGPU=N: train the DiT on N GPUs of the machine (DDP through torchrun; train.batch_size is each
# GPU's, so the global batch is N times larger). The codec, evaluation and checks stay on one.
# Check it first, in the same call (about a minute; CHECK_N=0 leaves the tiny DiT its time):
#   PRESET=tiny NGPU=2 CHECK_N=0 TOTAL_S=150 OUT=/tmp/smoke_out WORK=/tmp/smoke bash ... && N=2
# It passed on two H200s in session 7 (WORKERS=4, beside STAGE=styles); NGPU=2 with batch_size=128
# then trained at 5,800 samples/s (RESULTS.md, "Sixth GPU-trained candidate").
# DIFFUSION_ARGS: extra `key=value` overrides for the DiT training (keep them the same in a
# REUSE=1 call), e.g. DIFFUSION_ARGS="channel_weights=uniform" for the ablation of the loss weights.
# CPU dry run of the whole pipeline (tiny presets, no install), about 3 minutes on 2 cores:
#   PRESET=tiny STAGE=all DEVICE=cpu PY=.venv/bin/python OUT=/tmp/hair_out \
#   WORK=/tmp/hair_work bash packages/hair/scripts/gpu_run.sh
set -euo pipefail

OUT=${OUT:-/tmp/hair_out}
WORK=${WORK:-/tmp/hair_work}
STAGE=${STAGE:-train}
REUSE=${REUSE:-0}
PRESET=${PRESET:-default}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
TOTAL_S=${TOTAL_S:-540}            # each call ends its work by then (the tool stops it at 600 s)
CORES=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # nproc obeys OMP_NUM_THREADS
CORES=$(( CORES > 32 ? 32 : CORES ))
WORKERS=${WORKERS:-$(( CORES > 1 ? CORES - 1 : 1 ))}
if [ "$PRESET" = tiny ]; then
  STYLES=${STYLES:-12}; CODEC_STYLES=${CODEC_STYLES:-6}; EVAL_N=${EVAL_N:-2}; CHECK_N=${CHECK_N:-3}
  CONFIG=tiny; CODEC_STEPS=${CODEC_STEPS:-30}; DIFFUSION_STEPS=${DIFFUSION_STEPS:-40}
  SAMPLE_ARGS=${SAMPLE_ARGS:-"--root-candidates 300 --points 16 --image-size 64"}
  EVAL_ARGS=${EVAL_ARGS:-"--eval-points 2000"}
else
  STYLES=${STYLES:-980}              # diffusion training styles (70 per family), seeds 0..STYLES-1
  CODEC_STYLES=${CODEC_STYLES:-280}  # the codec's share: seeds 0..CODEC_STYLES-1, every 10th held out
  EVAL_N=${EVAL_N:-56}               # held-out styles (4 per family)
  CHECK_N=${CHECK_N:-14}             # held-out styles of the conditioning check (1 per family)
  CONFIG=default; CODEC_STEPS=${CODEC_STEPS:-6000}; DIFFUSION_STEPS=${DIFFUSION_STEPS:-8000}
  SAMPLE_ARGS=${SAMPLE_ARGS:-}       # dataset/evaluation sample settings (defaults: 10,000 / 64 / 128)
  EVAL_ARGS=${EVAL_ARGS:-}
fi
DIFFUSION_ARGS=${DIFFUSION_ARGS:-}
# torch.compile for the DiT on a GPU: 2.3x the benchmark's step and 1.3-1.45x real training on
# the H200 (RESULTS.md, session 6). A run may switch it between REUSE=1 calls (exact resume).
COMPILE=${COMPILE:-$([ "$DEVICE" = cuda ] && echo true || echo false)}
NGPU=${NGPU:-1}  # processes (GPUs) for the DiT training, through torchrun; batch_size is per GPU
EXTRA_STYLES=${EXTRA_STYLES:-0}
EXTRA_FAMILIES=${EXTRA_FAMILIES:-curly,coily,wavy}
INIT=${INIT:-}
CODEC_LIMIT_S=${CODEC_LIMIT_S:-75}
# Train preamble: the first call reads the styles in $WORKERS processes and encodes them (99 s for
# 3,920 styles with 31 workers, session 7); REUSE=1 calls load the textures the first one cached in
# $WORK/model-run. Each call logs the real figure: set PREP_S from it.
[ "$REUSE" = 1 ] && PREP_S=${PREP_S:-30} || PREP_S=${PREP_S:-$(( (STYLES + EXTRA_STYLES) / 10 + 10 ))}
CHECK_S=${CHECK_S:-60}                    # conditioning check (held-out styles + sampling)
[ "$CHECK_N" -gt 0 ] || CHECK_S=0          # CHECK_N=0: no conditioning check (run it on a CPU)
[ "$CODEC_STYLES" -lt "$STYLES" ] || { echo "CODEC_STYLES must be < STYLES"; exit 2; }

mkdir -p "$OUT" "$WORK"
exec > >(tee "$OUT/log.txt") 2>&1

if [ "$DEVICE" = cuda ]; then
  # Once per machine: two runs side by side (the smoke test beside STAGE=styles) share it.
  [ -d /tmp/site/diffusers ] ||
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD/shared/src:$PWD/packages/hair/src
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
fi
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1  # data workers are processes: one thread each
HAIR="$PY -m difforge.hair.cli"
$PY -c "import torch, diffusers; print('torch', torch.__version__, 'diffusers', diffusers.__version__)"
SECONDS=0
if [ "$REUSE" != 1 ] && [ "$STAGE" != bench ]; then
  rm -rf "$WORK"/styles "$WORK"/codec "$WORK"/codec-run "$WORK"/model "$WORK"/model-run
fi
rm -f "$OUT/results.md"

left() { echo $(( TOTAL_S - SECONDS )); }

conditioning_check() {  # $1: held-out (default) or train styles
  [ "$CHECK_N" -gt 0 ] || return 0
  local split=${1:-held-out} out=$OUT/conditioning.json
  [ "$split" = held-out ] || out=$OUT/conditioning_$split.json
  echo "== conditioning check: $CHECK_N $split styles (at ${SECONDS}s)"
  timeout "$CHECK_S" $PY packages/hair/benchmarks/conditioning.py --model "$WORK/model" \
    --n "$CHECK_N" --split "$split" --workers "$WORKERS" --device "$DEVICE" $SAMPLE_ARGS \
    --out "$out" --md "$OUT/results.md" || echo "   conditioning check failed"
}

generate_styles() {  # the codec's styles now, the rest in the background (wait_for_styles)
  if [ -f "$WORK/styles/codec/index.json" ] && [ -f "$WORK/styles/rest/index.json" ] &&
    { [ "$EXTRA_STYLES" = 0 ] || [ -f "$WORK/styles/extra/index.json" ]; }; then
    echo "== styles: reusing $WORK/styles"
  else
    rm -rf "$WORK/styles"
    echo "== styles 0..$(( CODEC_STYLES - 1 )) (the codec's) with $WORKERS workers"
    $HAIR dataset --n "$CODEC_STYLES" --seed 0 --out "$WORK/styles/codec" --workers "$WORKERS" \
      $SAMPLE_ARGS
    echo "   done at ${SECONDS}s; styles $CODEC_STYLES..$(( STYLES - 1 )) go on in the background"
    $HAIR dataset --n $(( STYLES - CODEC_STYLES )) --seed "$CODEC_STYLES" --out "$WORK/styles/rest" \
      --workers $(( WORKERS > 2 ? WORKERS - 1 : 1 )) $SAMPLE_ARGS > "$WORK/styles_rest.log" 2>&1 &
    REST_PID=$!
  fi
}

wait_for_styles() {
  if [ -n "${REST_PID:-}" ]; then
    wait "$REST_PID" || { cat "$WORK/styles_rest.log"; exit 1; }
  fi
  if [ "$EXTRA_STYLES" -gt 0 ] && [ ! -f "$WORK/styles/extra/index.json" ]; then
    echo "== $EXTRA_STYLES extra styles of $EXTRA_FAMILIES, seeds from $STYLES on (at ${SECONDS}s)"
    $HAIR dataset --n "$EXTRA_STYLES" --seed "$STYLES" --families "$EXTRA_FAMILIES" \
      --out "$WORK/styles/extra" --workers "$WORKERS" $SAMPLE_ARGS
  fi
}

train_stage() {
  generate_styles
  if [ -n "$INIT" ]; then
    echo "== strand codec: the one of $INIT (INIT)"
  elif [ -f "$WORK/codec/metrics.json" ]; then
    echo "== strand codec: reusing $WORK/codec"
  else
    echo "== strand codec: $CODEC_STYLES styles, $CODEC_STEPS steps (limit ${CODEC_LIMIT_S}s)"
    $HAIR train-codec --data "$WORK/styles/codec" --out "$WORK/codec" --config "$CONFIG" \
      train.steps="$CODEC_STEPS" time_limit_s="$CODEC_LIMIT_S" train.tensorboard=false
  fi
  wait_for_styles
  echo "   styles and codec done at ${SECONDS}s"

  local limit=$(( $(left) - PREP_S - CHECK_S - 30 ))  # 30: start-up, saving, copying
  [ "$limit" -ge 20 ] || { echo "no time left for the diffusion model (${limit}s)"; exit 1; }
  echo "== scalp diffusion: $(( STYLES + EXTRA_STYLES )) styles, $DIFFUSION_STEPS steps planned, ${limit}s in this call" \
    "${DIFFUSION_ARGS:+(overrides: $DIFFUSION_ARGS)}"
  local start=$SECONDS
  local start_from=(--codec "$WORK/codec")
  [ -z "$INIT" ] || start_from=(--init "$INIT")
  local launch=$HAIR
  [ "$NGPU" -le 1 ] ||
    launch="$PY -m torch.distributed.run --standalone --nproc_per_node $NGPU -m difforge.hair.cli"
  $launch train --data "$WORK/styles" "${start_from[@]}" --out "$WORK/model" \
    --config "$CONFIG" train.steps="$DIFFUSION_STEPS" time_limit_s="$limit" train.tensorboard=false \
    train.compile="$COMPILE" data.workers="$WORKERS" $DIFFUSION_ARGS
  rm -rf "$OUT/default" && cp -r "$WORK/model" "$OUT/default" && du -sh "$OUT/default"
  $PY -c "import json, sys; d = json.load(open(sys.argv[1]))['training']['diffusion']; \
print(f\"   step {d['steps']} of {d['planned_steps']}, last logs {d['final_logs']}\"); \
print(f\"   command {sys.argv[2]}s, training {d['seconds']:.0f}s: reading + encoding the styles \
and saving took {int(sys.argv[2]) - d['seconds']:.0f}s (PREP_S=$PREP_S)\")" \
    "$WORK/model/config.json" $(( SECONDS - start ))
  echo "   done at ${SECONDS}s"
  conditioning_check
}

eval_stage() {
  [ -f "$WORK/model/config.json" ] || { echo "no $WORK/model: run STAGE=train first"; exit 1; }
  echo "== evaluation: $EVAL_N held-out styles, baselines fitted on the cached styles"
  timeout $(( $(left) - 40 )) $HAIR evaluate --model "$WORK/model" --n "$EVAL_N" \
    --train-data "$WORK/styles" --workers "$WORKERS" --device "$DEVICE" $SAMPLE_ARGS $EVAL_ARGS \
    --out "$OUT/results.json" --md "$OUT/results.md.new"
  cat "$OUT/results.md.new" >> "$OUT/results.md" && rm "$OUT/results.md.new"
  echo "   done at ${SECONDS}s"
  # The memorisation gap: held-out against training styles (RESULTS.md, session 6).
  conditioning_check held-out
  conditioning_check train
  echo "== generation speed (10,000 strands)"
  $PY packages/hair/benchmarks/generate_speed.py --model "$WORK/model" --device "$DEVICE" \
    --md "$OUT/results.md"
  if [ "$DEVICE" = cuda ]; then
    OMP_NUM_THREADS=$CORES $PY packages/hair/benchmarks/generate_speed.py \
      --model "$WORK/model" --device cpu --repeats 1 --md "$OUT/results.md"
  fi
}

bench_stage() {
  local sizes
  sizes=$($PY -c "from difforge.hair.run_config import load_run_config as c; \
print(c('diffusion', '$CONFIG', []).train.batch_size, c('codec', '$CONFIG', []).model.latent_dim)")
  for overrides in "" "model.patch_size=4 channel_weights=uniform"; do
    $PY packages/hair/benchmarks/train_step.py --config "$CONFIG" --batch "${sizes% *}" \
      --latent-dim "${sizes#* }" --steps 10 --device "$DEVICE" $DIFFUSION_ARGS $overrides \
      | tee -a "$OUT/results.md"
  done
}

case "$STAGE" in
  bench) bench_stage ;;
  styles) generate_styles; wait_for_styles; echo "   styles done at ${SECONDS}s" ;;
  train) train_stage ;;
  eval) eval_stage ;;
  all) train_stage; eval_stage ;;
  *) echo "STAGE must be styles, train, eval, all or bench"; exit 2 ;;
esac
echo "== all done at ${SECONDS}s"
