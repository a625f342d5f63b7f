# Sourced by gpu_run.sh and gpu_extra.sh (from the repository root): installs the carried wheels
# (.whl/*.whl, and .whl/traj/* only where the machine lacks pandas or pyproj) into
# ${TRAJ_SITE:-/tmp/site} and puts it, the core and this package on PYTHONPATH. Leaves the
# installed extras in the array `extra` (for the run's env.txt).
SITE=${TRAJ_SITE:-/tmp/site}
python3 -m pip install -q --no-index --no-deps --no-compile --target "$SITE" .whl/*.whl
extra=()
python3 -c "import pandas" 2>/dev/null || extra+=(.whl/traj/pandas-*.whl .whl/traj/python_dateutil-*.whl .whl/traj/pytz-*.whl .whl/traj/tzdata-*.whl .whl/traj/six-*.whl)
python3 -c "import pyproj" 2>/dev/null || extra+=(.whl/traj/pyproj-*.whl .whl/traj/certifi-*.whl)
if [ ${#extra[@]} -gt 0 ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "${extra[@]}"
fi
export PYTHONPATH=$SITE:$PWD/shared/src:$PWD/packages/traj/src PYTHONUNBUFFERED=1
