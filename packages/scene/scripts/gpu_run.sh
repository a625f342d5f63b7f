#!/usr/bin/env bash
# Runs a scene training recipe (src/difforge/scene/configs/recipe/NAME.yaml) on the GPU machine:
# the carried wheels, then `python3 -m difforge.scene.recipe` (one GPU) or `accelerate
# launch` of it (NGPU > 1: the VAE and DiT stages train on NGPU GPUs, the others run on the first)
# into $WORK. Recipes:
#   default   the shipped default model (weights/default) and its evaluation
#   tiny      toy size, to check the launcher
# Run from the repository root through the device tool, carrying the diffusers wheel and
# .whl/scene/ (trimesh, which the image lacks; libigl too if the recipe converts users' meshes),
# installed only where missing; carry [".whl/diffusers-0.42.1-py3-none-any.whl", ".whl/scene"]:
#   command: bash packages/scene/scripts/gpu_run.sh default
#   command: NGPU=2 bash packages/scene/scripts/gpu_run.sh default          (kind nvidia-h100-x2)
# Arguments after the recipe go to it: --stages vae,diffusion, key=value overrides, --device.
# The stage folders stay in $WORK (default /tmp/scene_recipe) on the machine: a call cut short, or
# a call per stage on the same warm machine, continues where the last one stopped (finished
# stages are reused, training resumes from its checkpoints).
# Files in $OUT: run.log, env.txt, default/ (the trained model folder: copy it to
# src/difforge/scene/weights/default), results.json and results.md (scripts/gpu_results.py: every
# stage's report and seconds, the card named).
source scripts/gpu_recipe.sh scene "$@"

# Whatever the stages finished is reported, also after a failure.
python3 packages/scene/scripts/gpu_results.py --run "$WORK" --out "$OUT"
model="$WORK/4-diffusion/model"
if [ -f "$model/config.json" ]; then rm -rf "$OUT/default" && cp -r "$model" "$OUT/default"; fi
exit $status
