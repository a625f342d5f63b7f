# Sourced (from the repository root) by packages/<name>/scripts/gpu_run.sh: runs one training
# recipe of a package on the GPU machine and leaves its exit status in $status.
#   source scripts/gpu_recipe.sh <package> <recipe> [recipe arguments: --stages, key=value ...]
# OUT (default /tmp/<package>_out) receives run.log and env.txt; WORK (default
# /tmp/<package>_recipe) holds the stage folders, so a later call on the same warm machine
# continues where this one stopped. NGPU > 1 runs the recipe through `accelerate launch`
# (training stages on every GPU, the others on the first). A call stops the recipe after
# STOP_AFTER_S seconds (default 560: the device tool ends a call at 600 s), with its checkpoints.
package=$1
shift
OUT=${OUT:-/tmp/${package}_out}
WORK=${WORK:-/tmp/${package}_recipe}
NGPU=${NGPU:-1}
STOP_AFTER_S=${STOP_AFTER_S:-560}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1

source scripts/gpu_env.sh "$package"
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no nvidia-smi"
  python3 --version
  echo "installed from .whl: ${installed[*]:-none}"
  git log -1 --format='commit %H %s' 2>/dev/null || true
} | tee "$OUT/env.txt"

launch=(python3)
if [ "$NGPU" -gt 1 ]; then
  launch=(python3 -m accelerate.commands.launch --num_processes "$NGPU")
fi
timeout --kill-after=20 "$STOP_AFTER_S" "${launch[@]}" -m "difforge.$package.recipe" "$@" --out "$WORK"
status=$?
[ "$status" -ne 124 ] || echo "stopped after $STOP_AFTER_S s: run the same command again to continue"
