# Sourced (from the repository root) by every GPU launcher: installs the carried wheels into
# ${DIFFORGE_SITE:-/tmp/site} once per machine and puts that folder, the core and the packages on
# PYTHONPATH. The GPU image has torch but not diffusers (and, for some packages, not pandas,
# pyproj or trimesh): .whl/*.whl are always installed, .whl/<package>/*.whl only when the module
# they provide is missing (the image's own build wins). Usage:
#   source scripts/gpu_env.sh traj        # one or more package names
# Leaves the installed extras in the array `installed` (for a run's env record).
SITE=${DIFFORGE_SITE:-/tmp/site}
installed=()
if [ ! -d "$SITE/diffusers" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$SITE" .whl/*.whl
  installed+=(.whl/*.whl)
fi
for package in "$@"; do
  for wheel in .whl/"$package"/*.whl; do
    [ -e "$wheel" ] || continue
    module=$(basename "$wheel" | cut -d- -f1 | tr '[:upper:]' '[:lower:]')
    module=${module/python_dateutil/dateutil}
    PYTHONPATH=$SITE python3 -c "import $module" 2>/dev/null && continue  # the image's or ours
    python3 -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "$wheel"
    installed+=("$wheel")
  done
done
PYTHONPATH=$SITE:$PWD/shared/src
for package in "$@"; do PYTHONPATH=$PYTHONPATH:$PWD/packages/$package/src; done
export PYTHONPATH PYTHONUNBUFFERED=1
