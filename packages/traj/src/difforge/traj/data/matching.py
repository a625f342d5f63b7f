"""Map matching of raw GPS traces onto a :class:`SegmentGraph`, with leuvenmapmatching.

Why leuvenmapmatching (KU Leuven DTAI, Apache-2.0, pure Python, on PyPI): it is an HMM matcher in
the Newson & Krumm (2009) family with *non-emitting states*, so it bridges sparse sampling (one
fix every 30 s skips several segments) inside the model instead of by post-hoc gap filling; its
map is an in-memory graph we fill from our own segments, so the result is in our segment ids. It
installs offline with numpy/scipy/rtree only. mappymatch (NREL) 0.7.1 requires ``pandas<3`` and
would downgrade the monorepo's pandas; FMM has no PyPI wheel.

The matcher runs in a local metric projection (metres), one graph vertex per polyline point.
Transitions are restricted to ``roadmap.rel``: the map's ``edges_nbrto`` (which the matcher asks
for the edges that may follow an edge) returns only the first piece of each legal successor
segment, so U-turn and one-way rules hold during matching. Remaining gaps (a restart after a fix
the matcher could not place) are closed with the shortest legal path; per-segment entry times are
interpolated along the matched path from the fixes' times.
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from difforge.core.errors import UserError
from difforge.traj.data.geo import LocalProjection
from difforge.traj.data.gps import GpsTrace, clean_traces, read_gps
from difforge.traj.data.hoser import read_roadmap, write_trajectories
from difforge.traj.data.segments import SegmentGraph

logging.getLogger("be.kuleuven.cs.dtai.mapmatching").setLevel(logging.ERROR)


def _segment_map_class():
    from leuvenmapmatching.map.inmem import InMemMap

    class SegmentMap(InMemMap):
        """InMemMap whose edge-to-edge moves follow our successor relation."""

        def __init__(self, next_labels: dict[tuple[int, int], list[int]], **kwargs) -> None:
            super().__init__(**kwargs)
            self.next_labels = next_labels

        def edges_nbrto(self, edge):
            l2 = edge[1]
            p2 = self.node_coordinates(l2)
            return [
                (l2, p2, l3, self.node_coordinates(l3)) for l3 in self.next_labels.get(edge, [])
            ]

    return SegmentMap


@dataclass
class MatchResult:
    """A matched trace: segment ids, entry times (or None), and how the matcher fared."""

    trace_id: str
    rids: np.ndarray
    times: np.ndarray | None
    fixes_used: int
    fixes_dropped: int
    restarts: int


@dataclass
class MatchReport:
    traces_in: int = 0
    traces_matched: int = 0
    failed: Counter = field(default_factory=Counter)
    fixes_dropped: int = 0
    restarts: int = 0


class MapMatcher:
    """HMM map matcher for one segment graph; build once, call :meth:`match` per trace.

    ``gps_noise_m`` is the standard deviation of the GPS error; ``max_dist_m`` the largest
    distance considered between a fix and its road, and between a road position passed between
    two fixes and the straight line joining them (default: ``max(50, 4 x noise)`` plus half the
    trace's 95th-percentile gap between fixes, so that sparse traces can turn corners);
    ``lattice_width`` the number of candidate states kept per fix (speed vs. accuracy).
    """

    def __init__(
        self,
        graph: SegmentGraph,
        gps_noise_m: float = 10.0,
        max_dist_m: float | None = None,
        lattice_width: int = 12,
    ) -> None:
        from leuvenmapmatching.matcher.distance import DistanceMatcher

        self.graph = graph
        self.gps_noise_m = float(gps_noise_m)
        self.max_dist_m = float(max_dist_m) if max_dist_m else None
        self._matcher_cls = DistanceMatcher
        self.lattice_width = lattice_width
        self.proj = LocalProjection(*graph.centroid.mean(axis=0))
        x, y = self.proj.to_xy(graph.coord_lonlat[:, 0], graph.coord_lonlat[:, 1])

        # One vertex label per end node (shared) and per interior polyline point (own).
        labels: dict[int, int] = {}
        positions: list[tuple[float, float]] = []

        def end_label(node_id: int, k: int) -> int:
            if node_id not in labels:
                labels[node_id] = len(positions)
                positions.append((y[k], x[k]))
            return labels[node_id]

        self._pieces: dict[
            tuple[int, int], tuple[int, int]
        ] = {}  # (l1, l2) -> (segment, piece index)
        self._first_piece: list[tuple[int, int]] = []
        self._piece_offset: list[np.ndarray] = []  # metres from segment start to each piece start
        self._piece_length: list[np.ndarray] = []
        for s in range(graph.num_segments):
            lo, hi = graph.coord_indptr[s], graph.coord_indptr[s + 1]
            seg_labels = [end_label(int(graph.u[s]), lo)]
            for k in range(lo + 1, hi - 1):
                seg_labels.append(len(positions))
                positions.append((y[k], x[k]))
            seg_labels.append(end_label(int(graph.v[s]), hi - 1))
            lengths = np.hypot(np.diff(x[lo:hi]), np.diff(y[lo:hi]))
            self._piece_length.append(lengths)
            self._piece_offset.append(np.concatenate([[0.0], np.cumsum(lengths)[:-1]]))
            for p, key in enumerate(itertools.pairwise(seg_labels)):
                # two straight segments with the same end nodes share a key: keep the shorter one
                if (
                    key not in self._pieces
                    or graph.length_m[s] < graph.length_m[self._pieces[key][0]]
                ):
                    self._pieces[key] = (s, p)
            self._first_piece.append((seg_labels[0], seg_labels[1]))
        self._seg_pieces = {}
        for key, (s, p) in self._pieces.items():
            self._seg_pieces.setdefault(s, {})[p] = key
        next_labels: dict[tuple[int, int], list[int]] = {}
        for key, (s, p) in self._pieces.items():
            if p + 1 in self._seg_pieces[s]:
                next_labels[key] = [self._seg_pieces[s][p + 1][1]]
            else:
                next_labels[key] = [
                    self._first_piece[t][1]
                    for t in graph.successors(s)
                    if self._first_piece[t] in self._pieces
                    and self._pieces[self._first_piece[t]][0] == t
                ]
        self.map = _segment_map_class()(
            next_labels, name="segments", use_latlon=False, use_rtree=True, index_edges=True
        )
        for label, pos in enumerate(positions):
            self.map.add_node(label, pos)
        for l1, l2 in self._pieces:
            self.map.add_edge(l1, l2)

    def _matcher(self, max_dist: float):
        sigma = max(self.gps_noise_m, 3.0)
        return self._matcher_cls(
            self.map,
            obs_noise=sigma,
            obs_noise_ne=2 * sigma,
            dist_noise=2 * sigma,
            max_dist=max_dist,
            max_dist_init=max_dist,
            non_emitting_states=True,
            max_lattice_width=self.lattice_width,
        )

    def match(self, trace: GpsTrace) -> MatchResult | None:
        """Match one cleaned trace; None when no fix lies near a road."""
        x, y = self.proj.to_xy(trace.lon, trace.lat)
        # Fixes far from every road (a parking garage, a park path) are dropped up front: each one
        # would otherwise stop the matcher and cost a restart.
        near_dist = self.max_dist_m or max(50.0, 4.0 * self.gps_noise_m)
        fix_index = [
            k
            for k in range(len(x))
            if self.map.edges_closeto((y[k], x[k]), max_dist=near_dist, max_elmt=1)
        ]
        dropped = len(x) - len(fix_index)
        # As Newson & Krumm do, keep only fixes at least 2 sigma from the previous kept one: dense
        # noisy fixes otherwise make zig-zags through side streets look consistent to the HMM.
        fix_index = self._thin(x, y, fix_index, 2.0 * self.gps_noise_m)
        points = [(y[k], x[k]) for k in fix_index]
        max_dist = self.max_dist_m
        if max_dist is None:
            gaps = np.hypot(np.diff(x[fix_index]), np.diff(y[fix_index]))
            max_dist = near_dist + (0.5 * float(np.percentile(gaps, 95)) if len(gaps) else 0.0)
        # (segment, metres along it, fix index) for every fix the matcher placed
        anchors: list[tuple[int, float, int]] = []
        start, restarts = 0, 0
        while start < len(points):
            matcher = self._matcher(max_dist)
            matcher.match(points[start:])
            states = matcher.lattice_best or []
            placed = [m for m in states if m.is_emitting()]
            for m in placed:
                key = (m.edge_m.l1, m.edge_m.l2)
                if key in self._pieces:
                    s, p = self._pieces[key]
                    along = self._piece_offset[s][p] + float(m.edge_m.ti) * self._piece_length[s][p]
                    anchors.append((s, along, fix_index[start + m.obs]))
            last = max((m.obs for m in placed), default=-1)
            if matcher.early_stop_idx is None and last == len(points) - start - 1:
                break
            # the fix after the last placed one could not be matched: skip it and start again
            dropped += 1
            start += last + 2
            restarts += 1
        if not anchors:
            return None
        return self._assemble(trace, anchors, restarts, dropped)

    @staticmethod
    def _thin(x: np.ndarray, y: np.ndarray, index: list[int], min_step_m: float) -> list[int]:
        """The fixes of ``index`` at least ``min_step_m`` from the previous kept one (+ the last)."""
        if len(index) < 3:
            return index
        kept = [index[0]]
        for k in index[1:-1]:
            if np.hypot(x[k] - x[kept[-1]], y[k] - y[kept[-1]]) >= min_step_m:
                kept.append(k)
        kept.append(index[-1])
        return kept

    def _assemble(self, trace: GpsTrace, anchors, restarts: int, dropped: int) -> MatchResult:
        graph = self.graph
        # collapse the anchors into a segment sequence; keep each fix's position for the times
        seq: list[int] = []
        marks: list[tuple[int, float, int]] = []  # (index in seq, metres along, fix)
        for s, along, fix in anchors:
            if not seq or seq[-1] != s:
                if seq and not graph.transition_legal(seq[-1], s):
                    bridge = graph.shortest_path(seq[-1], s)
                    if bridge is None:  # cannot happen on a strongly connected graph
                        continue
                    seq.extend(bridge[1:-1])
                seq.append(s)
            marks.append((len(seq) - 1, along, fix))
        rids = np.asarray(seq, dtype=np.int64)
        times = None
        if trace.time is not None:
            start_m = np.concatenate([[0.0], np.cumsum(graph.length_m[rids])[:-1]])
            dist = np.maximum.accumulate(np.array([start_m[i] + a for i, a, _f in marks]))
            fix_t = trace.time[[f for *_x, f in marks]].astype(np.int64).astype(np.float64)
            fix_t = np.maximum.accumulate(fix_t)
            entry = (
                np.interp(start_m, dist, fix_t) if len(dist) > 1 else np.full(len(rids), fix_t[0])
            )
            times = np.maximum.accumulate(np.round(entry)).astype(np.int64).astype("datetime64[s]")
        return MatchResult(trace.trace_id, rids, times, len(marks), dropped, restarts)


def match_traces(
    graph: SegmentGraph,
    traces: list[GpsTrace],
    gps_noise_m: float = 10.0,
    max_dist_m: float | None = None,
) -> tuple[list[MatchResult], MatchReport]:
    """Match every trace; traces with no fix near a road, or matched to one segment, are counted."""
    matcher = MapMatcher(graph, gps_noise_m=gps_noise_m, max_dist_m=max_dist_m)
    report = MatchReport(traces_in=len(traces))
    results = []
    for trace in traces:
        result = matcher.match(trace)
        if result is None:
            report.failed["no fix near a road"] += 1
            continue
        if len(result.rids) < 2:
            report.failed["matched to a single segment"] += 1
            continue
        report.fixes_dropped += result.fixes_dropped
        report.restarts += result.restarts
        results.append(result)
    report.traces_matched = len(results)
    return results, report


def match_gps_file(
    gps_path: str | Path,
    data_dir: str | Path,
    out_csv: str | Path,
    gps_noise_m: float = 10.0,
    max_dist_m: float | None = None,
) -> list[str]:
    """``difforge-traj match``: read GPS (CSV/GPX), clean, match onto ``data_dir``'s road network,
    write a HOSER CSV (``rid_list``, ``time_list``; empty ``time_list`` when the GPS has no times).

    Returns report lines for the user. Raises UserError (and writes nothing) when no trace can be
    matched.
    """
    graph = read_roadmap(data_dir)
    traces, cleaning = clean_traces(read_gps(gps_path))
    if not traces:
        raise UserError(
            f"{gps_path}: no trace with two or more usable GPS fixes ({cleaning.line()})"
        )
    min_lon, min_lat, max_lon, max_lat = graph.bbox()
    pad = 0.01  # degrees (~1 km): fixes further outside cannot lie on this network
    inside = [
        t
        for t in traces
        if (
            (t.lon > min_lon - pad)
            & (t.lon < max_lon + pad)
            & (t.lat > min_lat - pad)
            & (t.lat < max_lat + pad)
        ).any()
    ]
    if not inside:
        raise UserError(
            f"{gps_path}: no GPS fix lies within the road network's area "
            f"(lon {min_lon:.4f}..{max_lon:.4f}, lat {min_lat:.4f}..{max_lat:.4f})"
        )
    results, report = match_traces(graph, inside, gps_noise_m=gps_noise_m, max_dist_m=max_dist_m)
    report.failed["outside the network area"] += len(traces) - len(inside)
    if not results:
        reasons = ", ".join(f"{n} {r}" for r, n in report.failed.items() if n)
        raise UserError(f"{gps_path}: no trace could be matched ({reasons})")
    write_trajectories(
        out_csv,
        [r.rids for r in results],
        [r.times for r in results],
        traj_ids=[r.trace_id for r in results],
    )
    failed = ", ".join(f"{n} {r}" for r, n in report.failed.items() if n) or "none"
    return [
        cleaning.line(),
        f"matched {report.traces_matched} of {len(traces)} traces (skipped: {failed}); "
        f"{report.fixes_dropped} fixes could not be placed",
        f"wrote {out_csv}",
    ]
