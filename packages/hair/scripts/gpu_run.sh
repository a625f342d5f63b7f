#!/usr/bin/env bash
# Runs a hair training recipe (src/difforge/hair/configs/recipe/NAME.yaml) on the GPU machine: the
# carried wheels, then `python3 -m difforge.hair.recipe` (one GPU) or `accelerate launch` of it
# (NGPU > 1: the codec and the DiT runs train on NGPU GPUs, the data and evaluation stages run on
# the first), into $WORK. Recipes:
#   default   the shipped default model (weights/default): styles, codec, the DiT runs
#             candidate3 -> 4a -> 4b -> 6, evaluation beside the baselines
#   tiny      toy size, to check the launcher
# Run from the repository root through the device tool with carry [".whl"] (.whl/*.whl: diffusers):
#   command: bash packages/hair/scripts/gpu_run.sh default
#   command: NGPU=2 bash packages/hair/scripts/gpu_run.sh default         (kind nvidia-h100-x2)
# Arguments after the recipe go to it: --stages data,codec, key=value overrides, --device.
# Batch sizes in a recipe are global, so NGPU changes the speed, not the recipe.
# The stage folders stay in $WORK (default /tmp/hair_recipe) on the machine. A call stops its
# recipe after 560 s (the device tool ends a call at 600 s) and copies what is finished; the next
# call on the same warm machine continues where it stopped (finished stages are reused, training
# resumes from its last checkpoint, every 500 steps in the default recipe). Repeat the same
# command until the log ends with the stage folders.
# Files in $OUT: run.log; <run>/, the model folder of the last finished DiT run (candidate6/ for
# the default recipe: copy it to src/difforge/hair/weights/default after a good evaluation);
# test.json/.md and validation.json/.md (the evaluation); recipe.json, codec_metrics.json and
# <run>.json for every finished DiT run (its model's config.json: the training record).
# The benchmarks stay separate commands on the model folder (README, "Recipes").
export OMP_NUM_THREADS=1  # style and evaluation workers are processes: one thread each
source scripts/gpu_recipe.sh hair "$@"

# Whatever the stages finished is copied, also after a failure or the time limit.
cp "$WORK/recipe.json" "$OUT/" 2>/dev/null
cp "$WORK"/2-codec/codec/metrics.json "$OUT/codec_metrics.json" 2>/dev/null
last=
while read -r stage; do
  [ -f "$stage/.done" ] && [ -f "$stage/model/config.json" ] || continue
  last=$stage
  cp "$stage/model/config.json" "$OUT/${stage##*/[0-9]*-}.json"
done < <(ls -d "$WORK"/[0-9]*-* 2>/dev/null | sort -V)
if [ -n "$last" ]; then
  name=${last##*/[0-9]*-}
  rm -rf "${OUT:?}/$name" && cp -r "$last/model" "$OUT/$name" && echo "model folder: $OUT/$name"
fi
cp "$WORK"/[0-9]*-evaluate/*.{json,md} "$OUT/" 2>/dev/null
exit $status
