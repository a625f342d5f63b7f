#!/usr/bin/env bash
# Runs a traj training recipe (configs/recipe/NAME.yaml) on the GPU machine: the carried wheels,
# then `python3 -m difforge.traj.recipe` (one GPU) or `accelerate launch` of it (NGPU > 1), into
# $WORK; the evaluation and the model folders are copied to $OUT. Recipes:
#   default           the shipped default model and the method comparison of RESULTS.md
#   berlin            the second city
#   bikes_zero_shot   the shipped car model on bicycle trips vs a bicycle-trained model
#   tiny              toy size, to check the launcher
# Run from the repository root through the device tool with carry [".whl"]: .whl/*.whl holds
# diffusers-0.42.1-py3-none-any.whl, .whl/traj/ the wheels the image may lack, installed only where
# missing (the H100 image of 2026-12 has pandas but no pyproj; the whole tree must stay under
# 64 MiB, so carry only those needed):
#   python -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 -d .whl/traj pyproj==3.7.2 certifi==2025.10.5
#   command: bash packages/traj/scripts/gpu_run.sh default
#   command: NGPU=4 bash packages/traj/scripts/gpu_run.sh default        (kind nvidia-h100-x4)
# Arguments after the recipe go to it: --stages data,train, key=value overrides, --device.
# The stage folders stay in $WORK (default /tmp/traj_recipe) on the machine: a call cut short, or
# a call per stage on the same warm machine, continues where the last one stopped (finished
# stages are reused, training resumes from its checkpoints).
# Files in $OUT: run.log, env.txt, bench.json and bench.md (once evaluate ran), models.tar.gz (the
# trained model folders without their checkpoints).
source scripts/gpu_recipe.sh traj "$@"

# Whatever the stages finished is copied, also after a failure.
if [ -f "$WORK/4-evaluate/bench.json" ]; then cp "$WORK"/4-evaluate/bench.{json,md} "$OUT"/; fi
models=()
for stage in 2-train 3-baselines; do [ -d "$WORK/$stage" ] && models+=("$stage"); done
if [ ${#models[@]} -gt 0 ]; then tar -C "$WORK" --exclude=train -czf "$OUT/models.tar.gz" "${models[@]}"; fi
exit $status
