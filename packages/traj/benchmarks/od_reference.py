"""Reference routes per OD pair, scored by the HOSER protocol: how far a single central route goes.

Usage: python packages/traj/benchmarks/od_reference.py [--data DIR] [--n 600] [--seed 0] [--out FILE.json]

On the same OD requests as ``difforge-traj bench`` (drawn from ``train.csv``), scores
- ``shortest_path``: the length-shortest path (Dijkstra);
- ``fastest_path``: the shortest path by the training set's mean travel time per segment;
- ``modal_training_route``: the most frequent training route between the same origin and
  destination segments (the request's own trip is always one of them).
It shows whether the data's routes depart systematically from the shortest path, i.e. whether any
generator can beat it on the pairwise metrics (Hausdorff, DTW, EDR). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from difforge.core.io import write_json
from difforge.traj.baselines.routes import ModalRoute, ShortestPath
from difforge.traj.bench import BenchSettings, Harness
from difforge.traj.data.datasets import dataset_dir
from difforge.traj.data.hoser import Trajectories
from difforge.traj.evaluate import Throughput, format_markdown_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="dataset (default: helsinki_drive)")
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the metrics as JSON")
    args = parser.parse_args()
    harness = Harness(args.data or dataset_dir("helsinki_drive"), BenchSettings(n=args.n))
    requests = harness.requests(args.seed)
    by_time = dataclasses.replace(harness.graph, length_m=np.asarray(harness.travel_seconds))
    methods = {
        "shortest_path": ShortestPath(harness.graph).generate(requests),
        "fastest_path": ShortestPath(by_time).generate(requests),
        "modal_training_route": ModalRoute(harness.graph, harness.train).generate(requests),
    }
    results = {}
    for name, rids in methods.items():
        trips = Trajectories(
            rids=rids, times=[None] * len(rids), traj_ids=list(map(str, range(len(rids))))
        )
        results[name] = harness.score(trips, requests, Throughput(len(rids), 0.0))
    print(format_markdown_table(results))
    if args.out:
        write_json(
            args.out,
            {"data": str(harness.data_dir), "n": args.n, "seed": args.seed, "methods": results},
        )


if __name__ == "__main__":
    main()
