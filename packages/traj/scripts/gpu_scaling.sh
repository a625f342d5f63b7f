#!/usr/bin/env bash
# The scaling benchmark on the GPU machine (a measurement, not a recipe: no model is kept):
# benchmarks/scaling.py on Helsinki and the synthetic 5k and 40k cities with the default preset
# (training ms/step, sampling trips/s, peak memory); scaling_<device>_<date>.{json,md} in $OUT.
# Run from the repository root through the device tool with carry [".whl"]:
#   command: bash packages/traj/scripts/gpu_scaling.sh
# Arguments go to scaling.py (see its docstring), e.g. --cities helsinki synthetic_5k.
set -euo pipefail
OUT=${OUT:-/tmp/traj_out}
mkdir -p "$OUT"
exec > >(tee "$OUT/run.log") 2>&1

source scripts/gpu_env.sh traj
python3 packages/traj/benchmarks/scaling.py --config default --device cuda --out-dir "$OUT" "$@"
