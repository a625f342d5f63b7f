"""Speed and memory from Helsinki (294 segments) to a Beijing-sized vocabulary (~40,000 segments).

    python packages/traj/benchmarks/scaling.py                       # GPU: default preset
    python packages/traj/benchmarks/scaling.py --config tiny --device cpu --cities helsinki grid6 \\
        --train-steps 2 --batch-size 8 --requests 8 --trips 200      # quick CPU check

For each city, with one model preset and the same trip canvas (``model.block_size=32``,
``model.max_len=64``, so only the vocabulary and the road graph change; the block size rule gives
32 for every city here anyway):

- **data**: ``helsinki`` is the shipped ``helsinki_drive`` (294 segments, SUMO trips);
  ``synthetic_5k`` / ``synthetic_40k`` (4,999 / 40,497 segments) and ``gridN`` are procedural
  cities with activity-centre trips (:func:`~difforge.traj.data.synthetic.write_synthetic_dataset`),
  built in a temporary folder (the seconds it took are reported);
- **training step time**: the real training path (:func:`~difforge.traj.train.train`: the core
  Trainer, bf16 autocast on CUDA, EMA, gradient clipping, road encoder run on the whole graph at
  every step) for ``2 x train_steps`` steps of a fixed batch; the first half is warm-up, the
  second half is timed (the Trainer's last log window: ms/step = batch / samples per second);
- **sampling throughput**: the trained model with its saved sampling defaults (topology
  constraint on), ``requests`` OD requests from the training set at a fixed batch,
  after one warm-up batch; trips/s of wall time. The per-batch hop table (BFS from the batch's
  destinations, on the CPU, part of the sampler's work) is also timed alone;
- **peak memory**: on CUDA ``torch.cuda.max_memory_allocated`` per phase (reset before each);
  on CPU the process's peak RSS (``ru_maxrss``), a high-water mark of the whole process, so cities
  run in ascending size and a city's value is the peak up to the end of its phase.

Writes ``scaling_<device>_<date>.json`` and ``.md`` (card, date, command) into ``--out-dir``
(default ``packages/traj/results``), rewritten after every city.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import re
import resource
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from difforge.core.cli import load_preset, resolve_device
from difforge.core.io import atomic_open, write_json
from difforge.traj import TRAIN_PRESETS
from difforge.traj.bench import device_name, warm_up
from difforge.traj.data.datasets import dataset_dir
from difforge.traj.data.hoser import read_trajectories
from difforge.traj.data.requests import sample_od_requests
from difforge.traj.data.synthetic import SCALING_GRIDS, write_synthetic_dataset
from difforge.traj.model import TrajDLM
from difforge.traj.sample import TrajectorySampler
from difforge.traj.train import TrajTrainConfig, train

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"
DEFAULT_CITIES = ("helsinki", *SCALING_GRIDS)
BLOCK_SIZE = 32
MAX_LEN = 64


def city_grid(name: str) -> int | None:
    """Junctions per side of a synthetic city name (``synthetic_5k``, ``gridN``); None for
    ``helsinki``."""
    if name == "helsinki":
        return None
    if name in SCALING_GRIDS:
        return SCALING_GRIDS[name]
    match = re.fullmatch(r"grid(\d+)", name)
    if match and int(match.group(1)) >= 3:
        return int(match.group(1))
    raise ValueError(f"unknown city {name!r} (helsinki, synthetic_5k, synthetic_40k, gridN)")


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def measure_city(
    name: str, args: argparse.Namespace, device: torch.device, work: Path
) -> dict[str, Any]:
    """Build (or load) one city, train briefly, sample: the row of the report."""
    grid = city_grid(name)
    started = time.perf_counter()
    if grid is None:
        data_dir = dataset_dir("helsinki_drive")
    else:
        data_dir = work / name
        write_synthetic_dataset(data_dir, grid, args.trips, seed=args.seed)
    build_s = time.perf_counter() - started

    config = load_preset(
        TrajTrainConfig,
        TRAIN_PRESETS,
        args.config,
        [
            f"model.block_size={BLOCK_SIZE}",
            f"model.max_len={MAX_LEN}",
            f"train.steps={2 * args.train_steps}",
            f"train.log_every={args.train_steps}",
            f"train.batch_size={args.batch_size}",
            "train.ckpt_every=0",
            "train.tensorboard=false",
            "train.warmup_steps=0",
        ],
    )
    reset_peak(device)
    started = time.perf_counter()
    summary = train(data_dir, work / f"{name}_model", config, show_progress=False)
    train_wall_s = time.perf_counter() - started
    train_peak = peak_memory_mb(device)
    ms_per_step = 1000 * args.batch_size / summary.logs["samples_per_s"]

    reset_peak(device)
    model = TrajDLM.from_pretrained(work / f"{name}_model")
    sampling = dataclasses.replace(model.sampling, batch_size=args.batch_size)
    sampler = TrajectorySampler(model, sampling, device)
    trips = read_trajectories(data_dir / "train.csv", sampler.graph)
    requests = sample_od_requests(trips, args.requests, seed=args.seed)
    warm_up(sampler, requests, args.batch_size)
    started = time.perf_counter()
    sampler.hops.to(requests.destinations[: args.batch_size])
    hop_ms = 1000 * (time.perf_counter() - started)
    generated = sampler.generate(
        requests, seed=args.seed, show_progress=False, batch_size=args.batch_size
    )
    sample_peak = peak_memory_mb(device)
    graph = sampler.graph
    return {
        "city": name,
        "segments": graph.num_segments,
        "transitions": graph.num_transitions,
        "build_s": build_s,
        "parameters": summary.parameters,
        "train_trips": summary.train_trips,
        "skipped_trips": summary.skipped,
        "block_size": summary.config.block_size,
        "max_len": summary.config.max_len,
        "train_ms_per_step": ms_per_step,
        "train_wall_s": train_wall_s,
        "train_loss": summary.logs.get("loss"),
        "train_peak_mb": train_peak,
        "sampling_trips": len(generated),
        "sampling_trips_per_s": generated.trajectories_per_second,
        "sampling_peak_mb": sample_peak,
        "hop_table_ms_per_batch": hop_ms,
        "mean_generated_segments": float(np.mean([len(r) for r in generated.rids])),
    }


def markdown(report: dict[str, Any]) -> str:
    memory = "CUDA max_memory_allocated" if report["device"] == "cuda" else "process peak RSS"
    lines = [
        "# difforge-traj scaling: training step, sampling throughput, memory vs vocabulary size",
        "",
        f"- card: {report['card']}; date: {report['date']}; torch {report['torch']}",
        f"- command: `{report['command']}`",
        f"- preset `{report['config']}`, block size {BLOCK_SIZE}, canvas {MAX_LEN}; training "
        f"batch {report['batch_size']}, {report['train_steps']} timed steps after as many warm-up "
        f"steps; sampling batch {report['batch_size']}, {report['requests']} requests from "
        "train.csv, 8 steps per block, w = 0.5, topology constraint on",
        f"- memory: {memory} (MB)",
        "",
        "| city | segments | parameters | train trips | ms/step | train peak MB | trips/s "
        "| sampling peak MB | hop table ms/batch | city build s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["cities"]:
        lines.append(
            f"| {row['city']} | {row['segments']:,} | {row['parameters'] / 1e6:.2f} M "
            f"| {row['train_trips']:,} | {row['train_ms_per_step']:.1f} "
            f"| {row['train_peak_mb']:,.0f} | {row['sampling_trips_per_s']:,.1f} "
            f"| {row['sampling_peak_mb']:,.0f} | {row['hop_table_ms_per_batch']:.1f} "
            f"| {row['build_s']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out_dir: Path, stem: str) -> None:
    write_json(out_dir / f"{stem}.json", report)
    with atomic_open(out_dir / f"{stem}.md", "w", encoding="utf-8") as fh:
        fh.write(markdown(report))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="default", help="model preset or YAML (default)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--cities", nargs="+", default=list(DEFAULT_CITIES))
    parser.add_argument("--train-steps", type=int, default=50, help="timed steps (as many warm-up)")
    parser.add_argument("--batch-size", type=int, default=256, help="training and sampling batch")
    parser.add_argument("--requests", type=int, default=512, help="OD requests timed per city")
    parser.add_argument("--trips", type=int, default=2000, help="trips per synthetic city")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--stem", help="output file name without extension")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    for name in args.cities:
        try:
            city_grid(name)
        except ValueError as exc:
            parser.error(str(exc))
    if min(args.train_steps, args.batch_size, args.requests, args.trips) < 1:
        parser.error("--train-steps, --batch-size, --requests and --trips must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    date = dt.date.today().isoformat()
    stem = args.stem or f"scaling_{device.type}_{date}"
    report: dict[str, Any] = {
        "card": device_name(device),
        "device": device.type,
        "date": date,
        "torch": torch.__version__,
        "command": shlex.join(["python", "packages/traj/benchmarks/scaling.py", *argv]),
        "config": args.config,
        "batch_size": args.batch_size,
        "train_steps": args.train_steps,
        "requests": args.requests,
        "cities": [],
    }
    with tempfile.TemporaryDirectory(prefix="traj_scaling_") as tmp:
        for name in args.cities:
            print(f"[scaling] {name}", flush=True)
            report["cities"].append(measure_city(name, args, device, Path(tmp)))
            write_report(report, args.out_dir, stem)
            print(markdown(report).splitlines()[-1], flush=True)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
