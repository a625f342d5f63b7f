"""The method comparison (``difforge-traj bench``): every method on the same OD requests.

For each seed, ``n`` OD requests (origin, destination, departure time) are drawn from the training
set (HOSER's ``gene.py``; :func:`~difforge.traj.data.requests.sample_od_requests`) and given to every
method; each method's trips are scored against the test set by the HOSER protocol
(:func:`~difforge.traj.evaluate.evaluate_trajectories`), then summarised as mean ± std over seeds.
Methods:

- ``shortest_path``: Dijkstra on length; ``modal_route``: the most frequent training route per
  origin-destination pair (shortest path for unseen pairs); ``markov``: first-order chain
  descending to the destination; ``hoser``: the rebuilt HOSER
  (:mod:`~difforge.traj.baselines.hoser`) with its best-first search (trained here with
  HOSER's settings unless a saved one is given). Route times come from the training set's mean
  speed per segment (:func:`~difforge.traj.baselines.travel_times.timed`);
- ``ar_decoding``: plain autoregressive decoding (block size 1, KV cache) of our backbone — a
  model trained with ``model.block_size=1`` when given, else the TrajDLM weights decoded one
  token at a time (the label says which);
- ``trajdlm``: block diffusion with topology-constrained sampling and guidance, and optional
  sampling ablations of the same weights (constraint off, guidance 0, one token per step, 8 / 4 /
  1 denoising steps per block: their throughput is swept and compared too) and extra trained
  models (e.g. no road encoder, another block size).

- ``real_trips``: a reference row, not a method: the training trajectory each OD request was
  drawn from, with its real times. It is what a generator that reproduced the data exactly would
  score; on the pairwise metrics (Hausdorff, DTW, EDR) a single central route per OD pair, such as
  the shortest path, can score better than the real trips themselves.

Same batch policy for every batched method (``batch_size`` requests at a time). Throughput is
trips per second on the named device, wall time of generation only (evaluation excluded), after a
warm-up batch. A separate sweep times TrajDLM and autoregressive decoding at several batch sizes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from difforge.core.cli import progress
from difforge.core.errors import UserError
from difforge.core.io import atomic_open, write_json
from difforge.core.timing import synchronize
from difforge.traj.baselines.hoser import HoserModel, search, train_hoser
from difforge.traj.baselines.routes import MarkovChain, ModalRoute, ShortestPath
from difforge.traj.baselines.travel_times import generate_timed, segment_travel_seconds
from difforge.traj.bench_settings import BASELINES, REFERENCE, BenchSettings
from difforge.traj.data.hoser import Trajectories, read_roadmap, read_trajectories
from difforge.traj.data.requests import ODRequests, sample_od_requests
from difforge.traj.data.segments import SegmentGraph
from difforge.traj.evaluate import (
    Throughput,
    evaluate_trajectories,
    format_markdown_table,
    summarize_runs,
)
from difforge.traj.model import TrajDLM
from difforge.traj.od_grid import HOSER_BOUNDING_BOXES, ODGrid, hoser_city
from difforge.traj.sample import TrajectorySampler

SAMPLING_ABLATIONS = {
    "trajdlm (no topology constraint)": {"constrained": False},
    "trajdlm (guidance w=0)": {"guidance_scale": 0.0},
    "trajdlm (one token per step)": {"steps_per_block": None, "threshold": None},
    "trajdlm (8 steps per block)": {"steps_per_block": 8},
    "trajdlm (4 steps per block)": {"steps_per_block": 4},
    "trajdlm (1 step per block)": {"steps_per_block": 1},
}
# Sampling settings whose throughput is swept over batch sizes (besides AR decoding).
TIMED_SETTINGS = ("trajdlm", *(k for k in SAMPLING_ABLATIONS if "per block" in k))


def device_name(device: torch.device) -> str:
    """The card's name, or ``CPU (<processor>, N threads)``."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.machine()}, {torch.get_num_threads()} torch threads)"


def od_grid(graph: SegmentGraph, data_dir: Path) -> ODGrid:
    """HOSER's box for its three cities (by folder name), else the network's bounding box."""
    key = hoser_city(data_dir.name)
    return ODGrid.from_bbox(*(HOSER_BOUNDING_BOXES[key] if key else graph.bbox()))


class Harness:
    """Data, requests and the scoring shared by every method of one benchmark run."""

    def __init__(self, data_dir: Path, settings: BenchSettings) -> None:
        self.data_dir = data_dir
        self.settings = settings
        self.device = torch.device(settings.device)
        self.graph = read_roadmap(data_dir)
        self.train = read_trajectories(data_dir / "train.csv", self.graph)
        self.test = read_trajectories(data_dir / "test.csv", self.graph)
        val_path = data_dir / "val.csv"
        self.val = read_trajectories(val_path, self.graph) if val_path.is_file() else None
        self.grid = od_grid(self.graph, data_dir)
        self.travel_seconds = segment_travel_seconds(self.graph, self.train)

    def requests(self, seed: int) -> ODRequests:
        return sample_od_requests(self.train, self.settings.n, seed)

    def score(
        self, trips: Trajectories, requests: ODRequests, throughput: Throughput
    ) -> dict[str, Any]:
        return evaluate_trajectories(
            self.graph,
            self.test,
            trips,
            requested_destinations=requests.destinations,
            grid=self.grid,
            throughput=throughput,
        )


def baseline_generator(
    name: str, harness: Harness, hoser_model: HoserModel | None
) -> Callable[[ODRequests], list[np.ndarray]]:
    graph = harness.graph
    if name == "shortest_path":
        return ShortestPath(graph).generate
    if name == "markov":
        return MarkovChain(graph, harness.train).generate
    if name == "modal_route":
        return ModalRoute(graph, harness.train).generate
    return lambda requests: search(hoser_model, requests).rids


def real_trips_runner(
    harness: Harness,
) -> Callable[[ODRequests, int], tuple[Trajectories, Throughput]]:
    """The reference row: each request answered by the training trip it was drawn from."""

    def run(requests: ODRequests, seed: int) -> tuple[Trajectories, Throughput]:
        if requests.trip_index is None:
            raise ValueError("real_trips needs requests drawn from the training set")
        train = harness.train
        trips = Trajectories(
            rids=[train.rids[i] for i in requests.trip_index],
            times=[train.times[i] for i in requests.trip_index],
            traj_ids=[train.traj_ids[i] for i in requests.trip_index],
        )
        return trips, Throughput(len(trips), 0.0)  # nothing generated: no speed

    return run


def _model_runner(
    sampler: TrajectorySampler,
) -> Callable[[ODRequests, int], tuple[Trajectories, Throughput]]:
    def run(requests: ODRequests, seed: int) -> tuple[Trajectories, Throughput]:
        synchronize(sampler.device)
        trips = sampler.generate(requests, seed=seed, show_progress=True)
        throughput = Throughput(
            len(trips),
            trips.seconds,
            batch_size=sampler.config.batch_size,
            device=str(sampler.device),
        )
        return trips.trajectories(), throughput

    return run


def warm_up(
    sampler: TrajectorySampler, requests: ODRequests, batch_size: int | None = None
) -> None:
    """One batch first, so that timings exclude one-off start-up costs (CUDA context, cuBLAS
    handles, allocator growth)."""
    k = min(len(requests), batch_size or sampler.config.batch_size)
    subset = ODRequests(requests.origins[:k], requests.destinations[:k], requests.departures[:k])
    sampler.generate(subset, seed=0, show_progress=False, batch_size=batch_size)


def run_bench(
    data_dir: str | Path,
    model: TrajDLM,
    settings: BenchSettings,
    *,
    ar_model_dir: Path | None = None,
    hoser_model_dir: Path | None = None,
    hoser_save_dir: Path | None = None,
    log: Callable[[str], None] = print,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run every method and return the results (see :func:`write_bench` for the files).

    ``on_progress`` receives the results so far after every method and every throughput sweep
    (e.g. to write partial files that survive a time limit).
    """
    data_dir = Path(data_dir)
    harness = Harness(data_dir, settings)
    device = harness.device
    base_sampling = dataclasses.replace(model.sampling, batch_size=settings.batch_size)

    runners: dict[str, Callable[[ODRequests, int], tuple[Trajectories, Throughput]]] = {}
    samplers: dict[str, TrajectorySampler] = {}
    hoser_model = None
    if "hoser" in settings.methods:
        hoser_model = _hoser_model(harness, hoser_model_dir, hoser_save_dir, log)
    for name in settings.methods:
        if name == REFERENCE:
            runners[name] = real_trips_runner(harness)
        elif name in BASELINES:
            generate = baseline_generator(name, harness, hoser_model)
            batch = settings.batch_size if name == "hoser" else None

            def run(requests, seed, generate=generate, batch=batch):
                synchronize(device)
                return generate_timed(
                    generate, requests, harness.travel_seconds, batch_size=batch, device=str(device)
                )

            runners[name] = run
        elif name == "trajdlm":
            samplers[name] = TrajectorySampler(model, base_sampling, device)
        else:  # ar_decoding
            ar_sampling = dataclasses.replace(base_sampling, decoding="autoregressive")
            if ar_model_dir is not None:
                ar_model = TrajDLM.from_pretrained(ar_model_dir)
                if ar_model.config.block_size != 1:
                    raise UserError(f"{ar_model_dir}: not an autoregressive model (block size 1)")
                samplers[name] = TrajectorySampler(ar_model, ar_sampling, device)
            else:
                samplers["ar_decoding (TrajDLM weights)"] = TrajectorySampler(
                    model, ar_sampling, device
                )
    if settings.ablations:
        for label, change in SAMPLING_ABLATIONS.items():
            samplers[label] = TrajectorySampler(
                model, dataclasses.replace(base_sampling, **change), device
            )
    for label, path in settings.extra_models.items():
        extra_model = TrajDLM.from_pretrained(path)
        extra_sampling = dataclasses.replace(extra_model.sampling, batch_size=settings.batch_size)
        samplers[label] = TrajectorySampler(extra_model, extra_sampling, device)
    for label, sampler in samplers.items():
        warm_up(sampler, harness.requests(settings.seeds[0]))
        runners[label] = _model_runner(sampler)

    methods: dict[str, Any] = {}
    sweep: dict[str, Any] = {}

    def results() -> dict[str, Any]:
        return {
            "card": device_name(device),
            "device": str(device),
            "date": dt.date.today().isoformat(),
            "data": str(data_dir),
            "model": str(model.model_dir),
            "ar_model": str(ar_model_dir) if ar_model_dir else None,
            "settings": {
                **dataclasses.asdict(settings),
                "extra_models": {k: str(v) for k, v in settings.extra_models.items()},
            },
            "sampling": dataclasses.asdict(base_sampling),
            "num_test": len(harness.test),
            "methods": methods,
            "throughput_sweep": sweep,
            "speedups": speedups(methods, sweep),
        }

    for label, run in runners.items():
        runs = []
        for seed in settings.seeds:
            requests = harness.requests(seed)
            log(f"[bench] {label}, seed {seed}: generating {len(requests)} trips")
            trips, throughput = run(requests, seed)
            runs.append(harness.score(trips, requests, throughput))
        speed = [r["trajectories_per_second"] for r in runs if r["trajectories_per_second"]]
        summary = summarize_runs(runs)
        summary["trajectories_per_second"] = float(np.mean(speed)) if speed else None
        methods[label] = {"runs": runs, "summary": summary}
        if label in samplers and device.type == "cuda":
            graphs = samplers[label].constraint_graphs
            methods[label]["constraint_cuda_graphs"] = {
                "used": graphs.enabled and bool(graphs.entries),
                "failure": graphs.failure,
            }
        log(
            f"[bench] {label}: "
            + ", ".join(f"{k}={v['mean']:.4g}" for k, v in summary.items() if isinstance(v, dict))
            + f", {summary['trajectories_per_second'] or 0:.1f} trips/s"
        )
        if on_progress is not None:
            on_progress(results())

    timed_samplers = {
        label: s
        for label, s in samplers.items()
        if settings.throughput_batches  # `--throughput-batches` with no sizes: no sweep
        and (label in TIMED_SETTINGS or label.startswith("ar_decoding"))
    }
    for label, sampler in timed_samplers.items():
        sweep[label] = throughput_sweep(sampler, harness, settings, log)
        if on_progress is not None:
            on_progress(results())
    return results()


def _hoser_model(
    harness: Harness,
    model_dir: Path | None,
    save_dir: Path | None,
    log: Callable[[str], None],
) -> HoserModel:
    if model_dir is not None:
        return HoserModel.from_pretrained(model_dir, harness.graph).to(harness.device)
    log(f"[bench] training the HOSER baseline ({harness.settings.hoser_epochs} epochs)")
    start = time.perf_counter()
    model, history = train_hoser(
        harness.graph,
        harness.train,
        val=harness.val,
        epochs=harness.settings.hoser_epochs,
        device=harness.device,
    )
    best = max((h.get("val_accuracy", h["accuracy"]) for h in history), default=0.0)
    log(f"[bench] trained in {time.perf_counter() - start:.0f} s, next-step accuracy {best:.3f}")
    if save_dir is not None:
        model.save_pretrained(save_dir)
    return model


def throughput_sweep(
    sampler: TrajectorySampler,
    harness: Harness,
    settings: BenchSettings,
    log: Callable[[str], None],
) -> dict[str, dict[str, float]]:
    """Trips per second at each batch size (``throughput_requests`` trips, at least one batch)."""
    out = {}
    pool = sample_od_requests(
        harness.train, max(max(settings.throughput_batches), settings.throughput_requests), 1234
    )
    for batch in progress(settings.throughput_batches, desc="throughput"):
        count = max(batch, settings.throughput_requests)
        requests = ODRequests(
            pool.origins[:count], pool.destinations[:count], pool.departures[:count]
        )
        warm_up(sampler, requests, batch)
        synchronize(sampler.device)
        trips = sampler.generate(requests, seed=0, show_progress=False, batch_size=batch)
        out[str(batch)] = {
            "trajectories": len(trips),
            "seconds": trips.seconds,
            "trajectories_per_second": trips.trajectories_per_second,
        }
        log(f"[bench] throughput {batch:>5}: {trips.trajectories_per_second:.1f} trips/s")
    return out


def speedups(methods: dict[str, Any], sweep: dict[str, Any]) -> dict[str, Any]:
    """TrajDLM's speed over the HOSER-style search and over autoregressive decoding."""
    out: dict[str, Any] = {}

    def speed(label: str) -> float | None:
        return methods.get(label, {}).get("summary", {}).get("trajectories_per_second")

    for label in TIMED_SETTINGS:
        ours, other = speed(label), speed("hoser")
        if ours and other:
            out["trajdlm_over_hoser" if label == "trajdlm" else f"{label} over hoser"] = (
                ours / other
            )
    ar = next((k for k in sweep if k.startswith("ar_decoding")), None)
    for label in sweep:
        if label.startswith("trajdlm") and ar:
            key = "trajdlm_over_ar_by_batch" if label == "trajdlm" else f"{label} over AR, by batch"
            out[key] = {
                b: sweep[label][b]["trajectories_per_second"]
                / sweep[ar][b]["trajectories_per_second"]
                for b in sweep[label]
                if b in sweep[ar]
            }
    return out


def markdown_report(results: dict[str, Any], command: str | None = None) -> str:
    """The benchmark as markdown: header, metric table, throughput sweep, speed-ups."""
    settings = results["settings"]
    lines = [
        f"# difforge-traj bench: {Path(results['data']).name}",
        "",
        f"- card: {results['card']}; date: {results['date']}",
        f"- {settings['n']} generated trips per seed, seeds {list(settings['seeds'])}, OD pairs and "
        f"departure times drawn from train.csv; scored against test.csv ({results['num_test']} trips)",
        f"- batch size {settings['batch_size']} for every batched method; sampling: "
        + ", ".join(f"{k}={v}" for k, v in results["sampling"].items() if k != "batch_size"),
    ]
    if command:
        lines.append(f"- command: `{command}`")
    rows = {name: m["summary"] for name, m in results["methods"].items()}
    lines += ["", "## Metrics (mean ± std over seeds)", "", format_markdown_table(rows)]
    if results["throughput_sweep"]:
        batches = sorted({b for s in results["throughput_sweep"].values() for b in s}, key=int)
        lines += [
            "",
            "## Throughput (trips/s) by batch size",
            "",
            "| method | " + " | ".join(batches) + " |",
            "|---|" + "---|" * len(batches),
        ]
        for name, by_batch in results["throughput_sweep"].items():
            cells = [
                f"{by_batch[b]['trajectories_per_second']:.1f}" if b in by_batch else "–"
                for b in batches
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if results["speedups"]:
        lines += ["", "## Speed-ups", ""]
        for key, value in results["speedups"].items():
            if isinstance(value, dict):
                value = ", ".join(f"batch {b}: {v:.2f}x" for b, v in value.items())
            else:
                value = f"{value:.2f}x"
            lines.append(f"- {key}: {value}")
    return "\n".join(lines) + "\n"


def write_bench(results: dict[str, Any], out_dir: str | Path, command: str | None = None) -> None:
    """``bench.json`` and ``bench.md`` in ``out_dir`` (each written atomically)."""
    out = Path(out_dir)
    write_json(out / "bench.json", {**results, "command": command})
    with atomic_open(out / "bench.md", "w", encoding="utf-8") as fh:
        fh.write(markdown_report(results, command))
