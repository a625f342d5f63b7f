"""Describe a HOSER-layout dataset folder (plain or gzipped): size, trip lengths, route choice.

    .venv/bin/python data_scripts/traj_dataset_stats.py runs/traj_datasets/synthetic_city_40x40_101k

Prints one markdown table row set: segments, transitions, trips per split, folder size on disk,
segments and kilometres per trip (mean, 10/50/90/99th percentiles), detour ratio (trip length over
the shortest legal path, 50th/90th percentile), share of trips with two or more U-turns, and the
per-OD route diversity of the training trips: for OD keys (HOSER's 200 m cells of origin and
destination) with at least 3 trips, the mean number of distinct routes over trips and the mean
route entropy (nats) of ``difforge.traj.route_diversity``.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from difforge.traj.data.hoser import read_dataset
from difforge.traj.od_grid import ODGrid
from difforge.traj.route_diversity import (
    detour_ratios,
    per_od_route_entropy,
    reverse_segments,
    route_cells,
    uturn_counts,
)

MIN_TRIPS = 3


def distinct_route_share(graph, trips, grid: ODGrid) -> tuple[float, int]:
    """Mean over OD keys with >= MIN_TRIPS trips of (distinct routes / trips), and the key count."""
    cells = grid.keys(graph.centroid[:, 0], graph.centroid[:, 1])
    groups = defaultdict(list)
    for rids in trips:
        groups[int(cells[rids[0]]), int(cells[rids[-1]])].append(route_cells(rids, cells))
    shares = [len(set(r)) / len(r) for r in groups.values() if len(r) >= MIN_TRIPS]
    return float(np.mean(shares)), len(shares)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    graph, splits = read_dataset(args.folder, on_invalid="error")
    trips = [r for split in splits.values() for r in split.rids]
    train = splits["train"].rids
    seg = np.array([len(r) for r in trips])
    km = np.array([graph.length_m[r].sum() / 1000 for r in trips])
    grid = ODGrid.from_bbox(*graph.bbox())
    entropy = per_od_route_entropy(graph, train, train, grid, MIN_TRIPS)
    distinct, keys = distinct_route_share(graph, train, grid)
    detour = detour_ratios(graph, trips)
    uturn2 = float((uturn_counts(trips, reverse_segments(graph)) >= 2).mean())
    size = sum(p.stat().st_size for p in args.folder.iterdir()) / 2**20
    q = (10, 50, 90, 99)
    rows = {
        "segments / transitions": f"{graph.num_segments:,} / {graph.num_transitions:,}",
        "trips train / val / test": " / ".join(f"{len(s):,}" for s in splits.values()),
        "folder size on disk": f"{size:.1f} MiB",
        "segments per trip: mean; p10/p50/p90/p99": f"{seg.mean():.1f}; "
        + "/".join(str(int(np.percentile(seg, p))) for p in q),
        "km per trip: mean; p10/p50/p90/p99": f"{km.mean():.2f}; "
        + "/".join(f"{np.percentile(km, p):.2f}" for p in q),
        "detour ratio p50 / p90": f"{np.percentile(detour, 50):.2f} / {np.percentile(detour, 90):.2f}",
        "trips with >= 2 U-turns": f"{100 * uturn2:.2f} %",
        f"train OD keys with >= {MIN_TRIPS} trips": f"{keys:,}",
        "distinct routes / trips per OD key (mean)": f"{distinct:.3f}",
        "route entropy per OD key (mean, nats)": f"{entropy['route_entropy_real']:.3f}",
    }
    print("| statistic | value |\n|---|---|")
    print("\n".join(f"| {k} | {v} |" for k, v in rows.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
