#!/usr/bin/env bash
# Several packages' GPU scripts in one device call, side by side on one GPU (our models are small:
# one alone leaves the card mostly idle, so sharing it costs each far less than taking turns).
#
#   bash benchmarks/gpu_together.sh 'NAME=COMMAND' ['NAME=COMMAND' ...]
#
# Each COMMAND runs in the background with OUT=$SCRATCH/NAME (its own output folder) and its
# console in $SCRATCH/NAME/console.log. At DEADLINE_S seconds (or when all have ended) every job
# still running is stopped, and each NAME's folder is packed into $OUT/NAME.tar.gz: the device tool
# returns at most 8 files, and this keeps one per job whatever each script writes. $OUT/status.txt
# lists each job's exit status (124: stopped at the deadline) and seconds.
# Timings measured inside a shared call are not alone on the card: report them as such.
# Example (one call, carry [".whl"]):
#   DEADLINE_S=570 bash benchmarks/gpu_together.sh \
#     'hair=WORKERS=10 bash packages/hair/scripts/gpu_run.sh' \
#     'scene=WORKERS=4 bash packages/scene/scripts/gpu_run.sh'
set -uo pipefail
OUT=${OUT:-/tmp/together_out}
SCRATCH=${SCRATCH:-/tmp/together}
DEADLINE_S=${DEADLINE_S:-570}
[ $# -gt 0 ] && [ $# -le 7 ] || { echo "usage: gpu_together.sh 'NAME=COMMAND' ... (1 to 7 jobs)"; exit 2; }
mkdir -p "$OUT"
rm -rf "$SCRATCH"

names=() pids=() starts=()
for job in "$@"; do
  name=${job%%=*} command=${job#*=}
  [[ "$name" =~ ^[A-Za-z0-9_-]+$ ]] && [ "$name" != "$job" ] \
    || { echo "not NAME=COMMAND: $job"; exit 2; }
  mkdir -p "$SCRATCH/$name"
  # setsid: each job is its own process group, so the deadline stops its whole tree.
  OUT=$SCRATCH/$name setsid bash -c "$command" > "$SCRATCH/$name/console.log" 2>&1 &
  names+=("$name") pids+=($!) starts+=("$SECONDS")
  echo "[together] $name started (pid $!): $command"
done

declare -A status=()
ended=0
while [ "$ended" -lt "${#names[@]}" ] && [ "$SECONDS" -lt "$DEADLINE_S" ]; do
  sleep 2
  for i in "${!names[@]}"; do
    name=${names[$i]}
    [ -n "${status[$name]:-}" ] && continue
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      wait "${pids[$i]}"
      status[$name]="$? $(( SECONDS - starts[i] ))"
      ended=$(( ended + 1 ))
      echo "[together] $name ended: exit ${status[$name]% *} after ${status[$name]#* } s"
    fi
  done
done
for i in "${!names[@]}"; do
  name=${names[$i]}
  if [ -z "${status[$name]:-}" ]; then
    kill -TERM -- "-${pids[$i]}" 2>/dev/null
    sleep 3
    kill -KILL -- "-${pids[$i]}" 2>/dev/null
    status[$name]="124 $(( SECONDS - starts[i] ))"
    echo "[together] $name stopped at the deadline (${DEADLINE_S} s)"
  fi
  printf '%s\t%s\n' "$name" "${status[$name]}" >> "$OUT/status.txt"
  tar -C "$SCRATCH" -czf "$OUT/$name.tar.gz" "$name"
  tail -n 15 "$SCRATCH/$name/console.log" | sed "s/^/[$name] /"
done
echo "[together] packed after ${SECONDS} s"
