#!/usr/bin/env bash
# One call on the GPU machine (Python 3.12, torch 2.11, no network): install the carried wheels,
# run the core's GPU benchmarks, and copy their reports to $OUT. Run through the device tool with
# carry [".whl"], where .whl/ holds diffusers-0.42.1-py3-none-any.whl.
set -euo pipefail
source scripts/gpu_env.sh
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 benchmarks/block_sampler.py --device cuda
python3 benchmarks/cache_hooks.py
cp benchmarks/results/block_sampler.* benchmarks/results/cache_hooks.* "$OUT"/
