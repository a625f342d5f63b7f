"""Map-matching accuracy where the truth is known: SUMO trips with added GPS noise and sparser sampling.

    .venv/bin/python benchmarks/traj_matching.py [--traces 40] [--seed 0]

Input: the shipped ``helsinki_drive`` dataset. Its ``gps_sample.csv.gz`` holds SUMO's 1 Hz
floating-car positions (lon/lat on the lane, so already a few metres off the centre line) for
150 test trips whose true segment sequences are in ``test.csv``. For each GPS noise level
(isotropic Gaussian, sigma per axis) and sampling interval, every trace is thinned to one fix per
interval (random phase), perturbed, matched with ``MapMatcher(gps_noise_m=sigma)`` and compared
with the true route:

- precision = |matched ∩ true| / |matched| and recall = |matched ∩ true| / |true| over the
  trips' segment sets, pooled over trips (micro average); also length-weighted (metres);
- exact = share of trips whose matched sequence equals the true one;
- legal = share of matched sequences whose every transition is in roadmap.rel.

Writes ``benchmarks/results/traj_matching.json`` and the "Map matching" section of
``packages/traj/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from difforge.core.io import atomic_open, write_json
from difforge.traj.data.datasets import dataset_dir
from difforge.traj.data.geo import LocalProjection
from difforge.traj.data.gps import GpsTrace
from difforge.traj.data.hoser import read_roadmap, read_trajectories
from difforge.traj.data.matching import MapMatcher

ROOT = Path(__file__).resolve().parents[1]
NOISE_M = (5.0, 10.0, 20.0)
INTERVALS_S = (1, 5, 15, 30)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def degrade(
    fixes: pd.DataFrame, interval_s: int, noise_m: float, proj: LocalProjection, rng
) -> GpsTrace:
    """One fix every ``interval_s`` seconds (random phase) with Gaussian noise of ``noise_m``."""
    t = fixes.time_s.to_numpy()
    phase = rng.integers(0, interval_s)
    keep = ((t - t[0]) % interval_s) == phase
    keep[[0, -1]] = True  # a trip log starts at departure and ends at arrival
    x, y = proj.to_xy(fixes.lon.to_numpy()[keep], fixes.lat.to_numpy()[keep])
    x = x + rng.normal(0.0, noise_m, size=len(x))
    y = y + rng.normal(0.0, noise_m, size=len(y))
    lon, lat = proj.to_lonlat(x, y)
    return GpsTrace(str(fixes.traj_id.iat[0]), lon, lat, t[keep].astype("datetime64[s]"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=40, help="trips per configuration")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    data = dataset_dir("helsinki_drive")
    graph = read_roadmap(data)
    test = read_trajectories(data / "test.csv", graph, on_invalid="error")
    truth = dict(zip(test.traj_ids, test.rids))
    gps = pd.read_csv(data / "gps_sample.csv.gz")
    gps["time_s"] = (
        pd.to_datetime(gps.time, format="%Y-%m-%dT%H:%M:%SZ")
        .to_numpy()
        .astype("datetime64[s]")
        .astype(np.int64)
    )
    ids = [t for t in pd.unique(gps.traj_id) if t in truth][: args.traces]
    proj = LocalProjection(*graph.centroid.mean(axis=0))

    rows = []
    for noise in NOISE_M:
        matcher = MapMatcher(graph, gps_noise_m=noise)
        for interval in INTERVALS_S:
            rng = np.random.default_rng(args.seed)
            inter = matched_n = true_n = 0
            inter_m = matched_m = true_m = 0.0
            exact = legal = fixes = failed = 0
            started = time.perf_counter()
            for traj_id in ids:
                trace = degrade(gps[gps.traj_id == traj_id], interval, noise, proj, rng)
                fixes += len(trace)
                result = matcher.match(trace)
                true = truth[traj_id]
                if result is None:
                    failed += 1
                    true_n += len(set(true.tolist()))
                    true_m += graph.length_m[np.unique(true)].sum()
                    continue
                got, want = set(result.rids.tolist()), set(true.tolist())
                both = np.array(sorted(got & want), dtype=np.int64)
                inter += len(both)
                matched_n += len(got)
                true_n += len(want)
                inter_m += graph.length_m[both].sum()
                matched_m += graph.length_m[sorted(got)].sum()
                true_m += graph.length_m[sorted(want)].sum()
                exact += int(np.array_equal(result.rids, true))
                legal += int(graph.transition_legal(result.rids[:-1], result.rids[1:]).all())
            seconds = time.perf_counter() - started
            row = {
                "gps_noise_m": noise,
                "interval_s": interval,
                "traces": len(ids),
                "fixes_per_trace": round(fixes / len(ids), 1),
                "precision": round(inter / max(matched_n, 1), 4),
                "recall": round(inter / max(true_n, 1), 4),
                "precision_length": round(inter_m / max(matched_m, 1e-9), 4),
                "recall_length": round(inter_m / max(true_m, 1e-9), 4),
                "exact_route": round(exact / len(ids), 4),
                "legal_route": round(legal / len(ids), 4),
                "failed": failed,
                "seconds_per_trace": round(seconds / len(ids), 3),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)

    command = "python benchmarks/traj_matching.py" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:])
    )
    meta = {
        "date": dt.date.today().isoformat(),
        "cpu": cpu_name(),
        "command": command,
        "dataset": "helsinki_drive (gps_sample.csv.gz: SUMO 1 Hz FCD of test trips)",
        "matcher": "difforge.traj.data.matching.MapMatcher (leuvenmapmatching DistanceMatcher)",
    }
    write_json(ROOT / "benchmarks" / "results" / "traj_matching.json", {**meta, "results": rows})
    write_results_section(rows, meta)
    return 0


def write_results_section(rows: list[dict], meta: dict) -> None:
    """Replace (or add) the "## Map matching" section of packages/traj/RESULTS.md."""
    lines = [
        "## Map matching",
        "",
        f"{meta['date']}, CPU ({meta['cpu']}, one process on a 2-core machine shared with other jobs:",
        f"s/trip is an upper bound), `{meta['command']}`.",
        "Truth: SUMO's 1 Hz positions of test trips in `helsinki_drive` (`gps_sample.csv.gz`) and",
        "their simulated segment sequences; each trace is thinned to one fix per interval and given",
        "Gaussian noise (sigma per axis), then matched with `MapMatcher(gps_noise_m=sigma)`",
        "(leuvenmapmatching, transitions restricted to `roadmap.rel`). Precision/recall over segment",
        "sets pooled over trips; `len` = length-weighted; exact = whole sequence equal.",
        "",
        "| sigma (m) | interval (s) | fixes/trip | precision | recall | precision len | recall len | exact | legal | failed | s/trip |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['gps_noise_m']:.0f} | {r['interval_s']} | {r['fixes_per_trace']} | {r['precision']:.3f} "
            f"| {r['recall']:.3f} | {r['precision_length']:.3f} | {r['recall_length']:.3f} "
            f"| {r['exact_route']:.3f} | {r['legal_route']:.3f} | {r['failed']} | {r['seconds_per_trace']:.2f} |"
        )
    section = "\n".join(lines) + "\n"
    path = ROOT / "packages" / "traj" / "RESULTS.md"
    text = path.read_text(encoding="utf-8") if path.is_file() else "# difforge-traj results\n\n"
    pattern = re.compile(r"^## Map matching\n.*?(?=^## |\Z)", re.S | re.M)
    text = (
        pattern.sub(section + "\n", text)
        if pattern.search(text)
        else text.rstrip("\n") + "\n\n" + section
    )
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


if __name__ == "__main__":
    sys.exit(main())
