"""Bicycle trips on the car road graph, for zero-shot mode transfer (as TrajDLM does with GeoLife).

    .venv/bin/python data_scripts/traj_helsinki_bike_on_drive.py   # -> datasets/helsinki_bike_on_drive

TrajDLM applies a taxi-trained model to GeoLife walking/cycling trips map-matched onto the same
Beijing road graph. Here the simulated bicycle trips of ``helsinki_bike`` (ridden on the bike
network: cycleways, shared paths and streets) are map-matched onto the ``helsinki_drive`` segment
graph, so a model trained on car trips and one trained on these bicycle trips share one
vocabulary and one test set. Each trip's ridden polyline is resampled every 25 m (times
interpolated from its segment entry times) and matched with ``MapMatcher`` (gps_noise_m=8: the
offset between a cycle path and the street it runs beside). Trips that leave the car network for
long stretches (parks, pedestrian streets) match partly or not at all; the counts are written to
meta.json. The train/val/test membership of every trip is kept. Needs no SUMO. Deterministic.
``--splits val test`` matches only those splits; ``--workers N`` spreads the trips over N
processes (about 1 s of CPU per trip).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import sys
import time
from collections import Counter

import numpy as np

from difforge.core.io import atomic_open, write_json
from difforge.traj.data.build import trip_statistics
from difforge.traj.data.datasets import DATASETS_DIR, dataset_dir
from difforge.traj.data.geo import LocalProjection
from difforge.traj.data.gps import GpsTrace
from difforge.traj.data.hoser import SPLITS, read_roadmap, read_trajectories, write_trajectories
from difforge.traj.data.matching import MapMatcher
from difforge.traj.data.segments import SegmentGraph

NAME = "helsinki_bike_on_drive"
CHUNK = 200  # trips per task: the pool spreads a split over all workers
SPACING_M = 25.0
GPS_NOISE_M = 8.0


def ridden_points(
    bike: SegmentGraph, rids: np.ndarray, entry: np.ndarray, proj: LocalProjection
) -> GpsTrace:
    """Points every SPACING_M metres along the trip's segments, with interpolated times."""
    pts = np.concatenate([bike.coords[s][(0 if k == 0 else 1) :] for k, s in enumerate(rids)])
    x, y = proj.to_xy(pts[:, 0], pts[:, 1])
    along = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))])
    # time at every polyline vertex: each segment's entry time sits at its first vertex
    starts = np.concatenate([[0.0], np.cumsum(bike.length_m[rids])[:-1]])
    scale = along[-1] / max(bike.length_m[rids].sum(), 1e-9)  # planar vs stored lengths
    seconds = entry.astype(np.int64).astype(np.float64)
    end_s = seconds[-1] + (seconds[-1] - seconds[-2] if len(seconds) > 1 else 0.0)
    knots = np.concatenate([starts * scale, [along[-1]]])
    stamps = np.concatenate([seconds, [end_s]])
    samples = np.arange(0.0, along[-1], SPACING_M)
    samples = np.append(samples, along[-1])
    sx, sy = np.interp(samples, along, x), np.interp(samples, along, y)
    lon, lat = proj.to_lonlat(sx, sy)
    t = np.round(np.interp(samples, knots, stamps)).astype(np.int64)
    keep = np.concatenate([[True], np.diff(t) > 0])  # the matcher wants increasing times
    return GpsTrace("", lon[keep], lat[keep], t[keep].astype("datetime64[s]"))


def match_chunk(task: tuple[str, int, int]) -> tuple[list, list, list, Counter]:
    """Match trips ``start:stop`` of one helsinki_bike split onto the drive graph."""
    split, start, stop = task
    bike_dir, drive_dir = dataset_dir("helsinki_bike"), dataset_dir("helsinki_drive")
    bike, drive = read_roadmap(bike_dir), read_roadmap(drive_dir)
    matcher = MapMatcher(drive, gps_noise_m=GPS_NOISE_M)
    proj = LocalProjection(*drive.centroid.mean(axis=0))
    trips = read_trajectories(bike_dir / f"{split}.csv", bike, on_invalid="error")
    rids, times, ids, counts = [], [], [], Counter()
    chunk = slice(start, stop)
    for traj_id, r, t in zip(trips.traj_ids[chunk], trips.rids[chunk], trips.times[chunk]):
        result = matcher.match(ridden_points(bike, r, t, proj))
        if result is None or len(result.rids) < 2:
            counts["no match"] += 1
            continue
        counts["restarted"] += int(result.restarts > 0)
        rids.append(result.rids)
        times.append(result.times)
        ids.append(traj_id)
    return rids, times, ids, counts


def stats_of(split: str) -> int:
    """Number of trips in a helsinki_bike split."""
    return len(read_trajectories(dataset_dir("helsinki_bike") / f"{split}.csv"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS))
    parser.add_argument("--workers", type=int, default=1, help="processes")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    drive_dir = dataset_dir("helsinki_drive")
    drive = read_roadmap(drive_dir)
    out = DATASETS_DIR / NAME
    out.mkdir(parents=True, exist_ok=True)
    for name in ("roadmap.geo", "roadmap.rel"):
        shutil.copyfile(drive_dir / name, out / name)
    sizes = {s: stats_of(s) for s in args.splits}
    tasks = [(s, a, min(a + CHUNK, n)) for s, n in sizes.items() for a in range(0, n, CHUNK)]
    with multiprocessing.Pool(args.workers) as pool:
        results = pool.map(match_chunk, tasks, chunksize=1)
    # Matching counts of splits matched by an earlier run are kept, so the splits can be
    # (re)matched one at a time and meta.json still describes every split in the folder.
    old_meta = out / "meta.json"
    counts: dict[str, dict] = (
        json.loads(old_meta.read_text())["statistics"]["matching"] if old_meta.is_file() else {}
    )
    for split in args.splits:
        parts = [res for task, res in zip(tasks, results) if task[0] == split]
        rids = [r for part in parts for r in part[0]]
        times = [t for part in parts for t in part[1]]
        ids = [i for part in parts for i in part[2]]
        write_trajectories(out / f"{split}.csv", rids, times, traj_ids=ids)
        split_counts = sum((part[3] for part in parts), Counter())
        split_counts["matched"] = len(rids)
        counts[split] = dict(split_counts)
        print(split, dict(split_counts), flush=True)
    present = [s for s in SPLITS if (out / f"{s}.csv").is_file()]
    counts = {s: counts[s] for s in present}
    all_rids, all_times = [], []
    for split in present:
        trips = read_trajectories(out / f"{split}.csv", drive, on_invalid="error")
        all_rids += trips.rids
        all_times += [(t - t[0]).astype(np.int64).astype(np.float64) for t in trips.times]
    stats = {
        "segments": drive.num_segments,
        "transitions": drive.num_transitions,
        "matching": counts,
        "recorded": trip_statistics(drive, all_rids, all_times),
    }
    stats["recorded"].pop("departures_per_hour")  # entry times were shifted to start at 0 here
    meta = {
        "name": NAME,
        "description": "helsinki_bike trips map-matched onto the helsinki_drive road graph",
        "source": "datasets/helsinki_bike and datasets/helsinki_drive (c) OpenStreetMap contributors, ODbL 1.0",
        "command": "python data_scripts/traj_helsinki_bike_on_drive.py --splits "
        + " ".join(present),
        "matcher": f"MapMatcher(gps_noise_m={GPS_NOISE_M}) on points every {SPACING_M:.0f} m",
        "statistics": stats,
    }
    write_json(out / "meta.json", meta)
    rec = stats["recorded"]
    matched = ", ".join(f"{s} {c['matched']}" for s, c in counts.items())
    with atomic_open(out / "README.md", "w", encoding="utf-8") as fh:
        fh.write(
            f"# {NAME}\n\nThe simulated bicycle trips of `helsinki_bike` map-matched onto the car road "
            "graph of `helsinki_drive` (same `roadmap.geo`/`roadmap.rel`), for zero-shot mode "
            "transfer: a car-trained model and a bicycle-trained model share this vocabulary and "
            f"test set, and the train split trains the bicycle model. Generated by "
            f"`{meta['command']} --workers N`.\n\n"
            "Road data © OpenStreetMap contributors, ODbL 1.0 (https://www.openstreetmap.org/copyright); "
            "this folder is a derived database under the same licence. Trips are simulated, not recorded.\n\n"
            f"Matched trips: {matched} "
            f"(not matched: {sum(c.get('no match', 0) for c in counts.values())}); "
            f"{rec['segments_per_trip_mean']} segments, {rec['length_km_mean']} km per trip on average; "
            f"{100 * rec['shortest_path_share']:.1f} % length-shortest paths.\n"
        )
    print(f"done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
