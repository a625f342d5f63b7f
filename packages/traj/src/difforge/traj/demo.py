"""The traj section of ``make demo``: 1,000 Helsinki trips from the shipped default model, on CPU.

OD pairs and departure times are drawn from the training set (HOSER's ``gene.py``); the trips are
written as HOSER CSV, GeoJSON and GPX, drawn over the road network, and scored against the test
set with the HOSER protocol, next to the shortest-path and Markov-chain baselines on the same
requests.
"""

from __future__ import annotations

from pathlib import Path

import torch

from difforge.core.gallery import DemoSection
from difforge.core.io import write_json
from difforge.traj.baselines.routes import MarkovChain, ShortestPath
from difforge.traj.baselines.travel_times import generate_timed, segment_travel_seconds
from difforge.traj.bench import od_grid
from difforge.traj.data.hoser import read_trajectories
from difforge.traj.data.requests import sample_od_requests
from difforge.traj.evaluate import Throughput, evaluate_trajectories
from difforge.traj.export import draw_map, write_generated_csv, write_geojson, write_gpx
from difforge.traj.model import TrajDLM, model_data_dir
from difforge.traj.sample import TrajectorySampler

HEADLINE = (
    "legal_transition_share",
    "destination_reached_share",
    "jsd_distance",
    "jsd_radius",
    "jsd_duration",
    "hausdorff_km",
    "dtw",
    "edr",
)


def _rounded(metrics: dict, keys=HEADLINE) -> dict[str, float | str]:
    return {k: round(float(metrics[k]), 4) if metrics.get(k) is not None else "–" for k in keys}


def run(out_dir: str | Path, *, model: str | Path = "default", n: int = 1000) -> list[DemoSection]:
    """Generate ``n`` trips with ``model`` on CPU; write files under ``out_dir``; return sections.

    Runs with one torch thread: the model is too small for a second OpenMP thread to pay for its
    synchronisation, and on a machine shared with other jobs it waits for cores (RESULTS.md,
    "Notes moved out of the source").
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(Path(out_dir), model, n)
    finally:
        torch.set_num_threads(threads)


def _run(out: Path, model: str | Path, n: int) -> list[DemoSection]:
    out.mkdir(parents=True, exist_ok=True)
    trajdlm = TrajDLM.from_pretrained(model)
    data_dir = model_data_dir(trajdlm.meta)
    sampler = TrajectorySampler(trajdlm, trajdlm.sampling, "cpu")
    graph = sampler.graph
    train = read_trajectories(data_dir / "train.csv", graph)
    test = read_trajectories(data_dir / "test.csv", graph)
    requests = sample_od_requests(train, n, seed=0)

    trips = sampler.generate(requests, seed=0, show_progress=False)
    files = {
        "csv": out / "trajdlm_trips.csv",
        "geojson": out / "trajdlm_trips.geojson",
        "gpx": out / "trajdlm_trips.gpx",
        "metrics": out / "trajdlm_metrics.json",
    }
    write_generated_csv(files["csv"], trips)
    write_geojson(files["geojson"], graph, trips)
    write_gpx(files["gpx"], graph, trips)
    picture = out / "trajdlm_map.png"
    draw_map(picture, graph, trips, title=f"TrajDLM: {len(trips)} trips on {data_dir.name}")
    grid = od_grid(graph, data_dir)
    ours = evaluate_trajectories(
        graph,
        test,
        trips.trajectories(),
        requested_destinations=requests.destinations,
        grid=grid,
        throughput=Throughput(len(trips), trips.seconds, trips.batch_size, "cpu"),
    )
    write_json(files["metrics"], ours)
    steps = trajdlm.meta.get("training", {}).get("steps", "?")
    sections = [
        DemoSection(
            title=f"traj: TrajDLM trips on {data_dir.name}",
            description=(
                f"{len(trips)} trips generated on CPU in {trips.seconds:.1f} s by the shipped "
                f"model ({steps} training steps; block size {trajdlm.config.block_size}, "
                f"guidance w={sampler.config.guidance_scale}, topology-constrained sampling), "
                f"OD pairs and departure times drawn from train.csv, scored against test.csv "
                f"({len(test)} trips) with the HOSER protocol."
            ),
            images=[picture],
            files=list(files.values()),
            metrics={
                **_rounded(ours),
                "od_pairs_matched": ours["num_od_pairs"],
                "trips_per_second_cpu": round(trips.trajectories_per_second, 1),
            },
        )
    ]

    travel_seconds = segment_travel_seconds(graph, train)
    baseline_metrics = {}
    for name, generator in (
        ("shortest_path", ShortestPath(graph).generate),
        ("markov", MarkovChain(graph, train).generate),
    ):
        generated, throughput = generate_timed(generator, requests, travel_seconds)
        baseline_metrics[name] = evaluate_trajectories(
            graph,
            test,
            generated,
            requested_destinations=requests.destinations,
            grid=grid,
            throughput=throughput,
        )
    baseline_file = out / "baseline_metrics.json"
    write_json(baseline_file, baseline_metrics)
    sections.append(
        DemoSection(
            title="traj: baselines on the same requests",
            description="Shortest path (Dijkstra on length) and a first-order Markov chain "
            "walked towards the destination; lower JSD, Hausdorff, DTW and EDR are better.",
            files=[baseline_file],
            metrics={
                f"{name} {key}": value
                for name, metrics in baseline_metrics.items()
                for key, value in _rounded(
                    metrics, ("jsd_distance", "hausdorff_km", "dtw", "edr")
                ).items()
            },
        )
    )
    return sections
