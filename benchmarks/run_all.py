"""`make bench`: the CPU-sized runs of every benchmark, one after another.

The numbers recorded in benchmarks/results/ and the packages' RESULTS.md come from the full runs on
the GPU machine (see each script's docstring and benchmarks/gpu_core.sh); these quick runs check
that every benchmark still works and give CPU numbers under ``*_quick`` names.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
QUICK_RUNS = [
    [HERE / "train_throughput.py", "--quick"],
    [HERE / "cache_hooks.py", "--quick"],
    [HERE / "block_sampler.py", "--quick"],
    [HERE / "traj_matching.py"],  # a CPU benchmark: its default run is the recorded one
]


def main() -> int:
    failed = []
    for script, *args in QUICK_RUNS:
        print(f"[bench] {script.name} {' '.join(args)}", flush=True)
        if subprocess.run([sys.executable, str(script), *args]).returncode != 0:
            failed.append(script.name)
    if failed:
        print(f"[bench] failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
