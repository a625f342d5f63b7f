"""Read and write the LibCity/HOSER dataset layout.

A dataset folder holds::

    roadmap.geo   geo_id,type,coordinates,highway,lanes,tunnel,bridge,roundabout,oneway,length,maxspeed,u,v
    roadmap.rel   rel_id,type,origin_id,destination_id
    train.csv     mm_id,user_id,traj_id,rid_list,time_list   (also val.csv, test.csv)

``geo_id`` is 0-based and equals the row index; ``coordinates`` is a GeoJSON-style
``[[lon,lat],...]`` list; ``highway`` is a road-class string, a list-string (Beijing, San
Francisco) or an integer code (Porto); ``roadmap.rel`` lists the directed transitions a -> b.
``rid_list`` is a comma-separated list of segment ids (with or without brackets; HOSER's code
``eval``s it, we parse it without ``eval``) and ``time_list`` one ``%Y-%m-%dT%H:%M:%SZ`` time per
segment: the time the trajectory enters that segment.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from difforge.core.errors import UserError
from difforge.core.io import atomic_open
from difforge.traj.data.geo import haversine_m
from difforge.traj.data.network import primary_highway
from difforge.traj.data.segments import PROPERTY_COLUMNS, SegmentGraph

GEO_COLUMNS = (
    "geo_id",
    "type",
    "coordinates",
    "highway",
    "lanes",
    "tunnel",
    "bridge",
    "roundabout",
    "oneway",
    "length",
    "maxspeed",
    "u",
    "v",
)
REL_COLUMNS = ("rel_id", "type", "origin_id", "destination_id")
ROADMAP_FILES = ("roadmap.geo", "roadmap.rel")  # a road network: its segments and transitions
TRAJ_COLUMNS = ("mm_id", "user_id", "traj_id", "rid_list", "time_list")
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
SPLITS = ("train", "val", "test")


# --- road network ---------------------------------------------------------------------------------
def write_roadmap(graph: SegmentGraph, out_dir: str | Path) -> None:
    """Write ``roadmap.geo`` and ``roadmap.rel`` for ``graph`` into ``out_dir`` (atomically each)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    props = graph.properties
    with atomic_open(out / "roadmap.geo", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(GEO_COLUMNS)
        for i in range(graph.num_segments):
            line = json.dumps(np.round(graph.coords[i], 7).tolist(), separators=(",", ":"))
            row = props.iloc[i]
            writer.writerow(
                [
                    i,
                    "LineString",
                    line,
                    graph.highway[i],
                    int(row["lanes"]),
                    int(row["tunnel"]),
                    int(row["bridge"]),
                    int(row["roundabout"]),
                    int(row["oneway"]),
                    f"{graph.length_m[i]:.3f}",
                    f"{float(row['maxspeed']):.1f}",
                    int(graph.u[i]),
                    int(graph.v[i]),
                ]
            )
    src = np.repeat(np.arange(graph.num_segments), np.diff(graph.succ_indptr))
    with atomic_open(out / "roadmap.rel", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(REL_COLUMNS)
        for rel_id, (a, b) in enumerate(zip(src.tolist(), graph.succ_indices.tolist())):
            writer.writerow([rel_id, "geo", a, b])


def _read_csv(path: Path, required: Sequence[str]) -> pd.DataFrame:
    return next(csv_chunks(existing_file(path), required, None))


def _node_ids_from_endpoints(coords: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Node ids for files without ``u``/``v``: one id per distinct end-point coordinate."""
    ids: dict[tuple[float, float], int] = {}
    us, vs = [], []
    for c in coords:
        us.append(ids.setdefault((c[0, 0], c[0, 1]), len(ids)))
        vs.append(ids.setdefault((c[-1, 0], c[-1, 1]), len(ids)))
    return np.asarray(us), np.asarray(vs)


def read_roadmap(data_dir: str | Path, name: str | None = None) -> SegmentGraph:
    """Read ``roadmap.geo`` and ``roadmap.rel`` from ``data_dir`` into a :class:`SegmentGraph`.

    Accepts HOSER's Beijing/Porto/San Francisco files and ours (plain or ``.gz``). Missing
    ``length`` is computed from the coordinates (great-circle), missing ``u``/``v`` from shared
    end points, missing property columns are 0. Raises UserError for missing files or columns, ids
    that are not ``0..N-1`` in order, unparsable coordinates and transitions naming unknown
    segments.
    """
    data_dir = Path(data_dir)
    graph, _ = read_roadmap_files(
        data_dir / "roadmap.geo", data_dir / "roadmap.rel", name or data_dir.name
    )
    return graph


def read_roadmap_files(
    geo_path: Path, rel_path: Path, name: str, renumber: bool = False
) -> tuple[SegmentGraph, np.ndarray]:
    """A road network from a ``.geo`` and a ``.rel`` file (see :func:`read_roadmap`); returns
    the graph and the file's ``geo_id`` of every segment.

    ``renumber`` (LibCity atomic files): ``geo_id`` may be any distinct integers; segment ``i``
    is the ``i``-th row, and ``.rel`` ids are translated.
    """
    geo_path, rel_path = existing_file(geo_path), existing_file(rel_path)
    geo = _read_csv(geo_path, ("geo_id", "coordinates"))
    if geo.empty:
        raise UserError(f"{geo_path}: no segments")
    try:
        geo_ids = geo["geo_id"].astype(np.int64).to_numpy()
    except ValueError as exc:
        raise UserError(f"{geo_path}: geo_id must be integers") from exc
    if renumber:
        if len(np.unique(geo_ids)) != len(geo_ids):
            raise UserError(f"{geo_path}: geo_id values repeat")
    elif not np.array_equal(geo_ids, np.arange(len(geo))):
        raise UserError(f"{geo_path}: geo_id must be 0..N-1 in row order (HOSER layout)")
    coords = []
    for row_no, text in enumerate(geo["coordinates"]):
        try:
            line = np.asarray(json.loads(text), dtype=np.float64)
        except (json.JSONDecodeError, ValueError, TypeError) as exc:
            raise UserError(
                f"{geo_path}: row {row_no}: coordinates are not a [[lon,lat],...] list"
            ) from exc
        if line.ndim != 2 or line.shape[0] < 2 or line.shape[1] < 2 or not np.isfinite(line).all():
            raise UserError(
                f"{geo_path}: row {row_no}: a segment needs two or more finite [lon,lat] points"
            )
        if (np.abs(line[:, 0]) > 180).any() or (np.abs(line[:, 1]) > 90).any():
            raise UserError(f"{geo_path}: row {row_no}: coordinates out of lon/lat range")
        coords.append(line[:, :2])
    if "length" in geo.columns and (geo["length"] != "").all():
        length = pd.to_numeric(geo["length"], errors="coerce").to_numpy()
        if not np.isfinite(length).all():
            raise UserError(f"{geo_path}: length must be numeric")
    else:
        length = np.array(
            [haversine_m(c[:-1, 0], c[:-1, 1], c[1:, 0], c[1:, 1]).sum() for c in coords]
        )
    highway = (
        [primary_highway(h) for h in geo["highway"]]
        if "highway" in geo.columns
        else ["unknown"] * len(geo)
    )
    if "u" in geo.columns and "v" in geo.columns:
        u = pd.to_numeric(geo["u"], errors="coerce").to_numpy()
        v = pd.to_numeric(geo["v"], errors="coerce").to_numpy()
        if not (np.isfinite(u).all() and np.isfinite(v).all()):
            u, v = _node_ids_from_endpoints(coords)
    else:
        u, v = _node_ids_from_endpoints(coords)
    props = pd.DataFrame(
        {
            c: pd.to_numeric(geo[c], errors="coerce").fillna(0).to_numpy()
            if c in geo.columns
            else np.zeros(len(geo))
            for c in PROPERTY_COLUMNS
        }
    )

    rel = _read_csv(rel_path, ("origin_id", "destination_id"))
    try:
        src = rel["origin_id"].astype(np.int64).to_numpy()
        dst = rel["destination_id"].astype(np.int64).to_numpy()
    except ValueError as exc:
        raise UserError(f"{rel_path}: origin_id/destination_id must be integers") from exc
    n = len(geo)
    if renumber:
        src, dst = segment_index(geo_ids, src), segment_index(geo_ids, dst)
    bad = (src < 0) | (src >= n) | (dst < 0) | (dst >= n)
    if bad.any():
        raise UserError(
            f"{rel_path}: {int(bad.sum())} transitions name segments outside 0..{n - 1}"
        )
    pairs = np.unique(src * n + dst)
    src, dst = pairs // n, pairs % n
    indptr = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=n))])
    graph = SegmentGraph(
        coords=coords,
        length_m=length,
        highway=highway,
        succ_indptr=indptr,
        succ_indices=dst,
        u=u.astype(np.int64),
        v=v.astype(np.int64),
        properties=props,
        name=name,
    )
    return graph, geo_ids


def segment_index(geo_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Row index of each of ``ids`` among ``geo_ids`` (-1 for an id that is not there)."""
    order = np.argsort(geo_ids, kind="stable")
    pos = np.clip(np.searchsorted(geo_ids, ids, sorter=order), 0, len(geo_ids) - 1)
    found = order[pos]
    return np.where(geo_ids[found] == ids, found, -1)


# --- trajectories ---------------------------------------------------------------------------------
@dataclass
class Trajectories:
    """Segment sequences with optional per-segment entry times.

    ``rids[k]`` is an int64 array of segment ids; ``times[k]`` a ``datetime64[s]`` array of the same
    length (entry time of each segment) or None when the file has no times; ``traj_ids[k]`` the
    ``traj_id`` column (row number when absent). ``skipped`` counts rows left out, by reason.
    """

    rids: list[np.ndarray]
    times: list[np.ndarray | None]
    traj_ids: list[str]
    skipped: Counter = field(default_factory=Counter)

    def __len__(self) -> int:
        return len(self.rids)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        return iter(zip(self.rids, self.times))

    @property
    def has_times(self) -> bool:
        return bool(self.times) and all(t is not None for t in self.times)


def parse_rid_list(text: str) -> np.ndarray:
    """``"1,2,3"``, ``"[1, 2, 3]"`` or ``"(1,2,3)"`` -> int64 array; ValueError if malformed."""
    body = text.strip().strip("[]()").strip()
    if not body:
        raise ValueError("empty rid_list")
    return np.asarray([int(tok) for tok in body.split(",")], dtype=np.int64)


def format_rid_list(rids: Sequence[int]) -> str:
    return ",".join(str(int(r)) for r in rids)


def format_time_list(times: np.ndarray) -> str:
    return ",".join(pd.to_datetime(np.asarray(times, dtype="datetime64[s]")).strftime(TIME_FORMAT))


TRIP_CHUNK_ROWS = 100_000  # rows parsed at a time: a large file's text never sits in memory whole


class RowScreen:
    """Checks a batch of parsed trajectories and keeps the first reason each row fails.

    Shared by the HOSER CSV and LibCity ``.dyna`` readers: ``rid_arrays`` are the rows' segment
    ids; :meth:`check_times` takes one flat ``datetime64[s]`` array and the per-row counts.
    """

    def __init__(self, rid_arrays: list[np.ndarray], reason: np.ndarray) -> None:
        self.reason = reason
        self.n = len(rid_arrays)
        self.lengths = np.array([len(r) for r in rid_arrays], dtype=np.int64)
        self.flat = np.concatenate(rid_arrays) if self.n else np.zeros(0, dtype=np.int64)
        self.row_of = np.repeat(np.arange(self.n), self.lengths)

    def flag(self, bad_rows: np.ndarray, why: str) -> None:
        hit = np.zeros(self.n, dtype=bool)
        hit[bad_rows] = True
        self.reason[hit & np.equal(self.reason, None)] = why

    def check_graph(self, graph: SegmentGraph) -> None:
        flat, row_of = self.flat, self.row_of
        self.flag(row_of[(flat < 0) | (flat >= graph.num_segments)], "unknown segment id")
        inner = row_of[:-1] == row_of[1:]
        legal = graph.transition_legal(flat[:-1], flat[1:])
        self.flag(row_of[:-1][inner & ~legal], "illegal transition")

    def check_times(self, stamps: np.ndarray, counts: np.ndarray, require_times: bool) -> list:
        """Flag bad time lists; returns each row's times (None where the row has none)."""
        stamp_row = np.repeat(np.arange(self.n), counts)
        self.flag(stamp_row[np.isnat(stamps)], "malformed time_list")
        self.flag(
            np.flatnonzero((counts > 0) & (counts != self.lengths)),
            "time_list length differs from rid_list",
        )
        seconds = stamps.astype(np.int64)
        same_row = stamp_row[:-1] == stamp_row[1:]
        self.flag(stamp_row[:-1][same_row & (np.diff(seconds) < 0)], "time_list goes backwards")
        if require_times:
            self.flag(np.flatnonzero(counts == 0), "empty time_list")
        bounds = np.concatenate([[0], np.cumsum(counts)])
        return [stamps[bounds[k] : bounds[k + 1]] if counts[k] else None for k in range(self.n)]

    def keep(
        self,
        path: Path,
        first_row: int,
        rid_arrays: list[np.ndarray],
        time_arrays: list,
        ids: Sequence[str],
        on_invalid: str,
        unit: str = "row",
    ) -> Trajectories:
        """The rows that passed; UserError naming the first bad ``unit`` (numbered from 1 at
        ``first_row`` + 1) when ``on_invalid="error"``."""
        bad = np.flatnonzero(np.not_equal(self.reason, None))
        if len(bad) and on_invalid == "error":
            raise UserError(f"{path}: {unit} {first_row + bad[0] + 1}: {self.reason[bad[0]]}")
        good = np.flatnonzero(np.equal(self.reason, None))
        return Trajectories(
            rids=[rid_arrays[k] for k in good],
            times=[time_arrays[k] for k in good],
            traj_ids=[str(ids[k]) for k in good],
            skipped=Counter(self.reason[bad].tolist()),
        )


def existing_file(path: str | Path) -> Path:
    """``path``, or ``path.gz`` when only the compressed file exists (city-scale sets are gzipped)."""
    path = Path(path)
    gz = path.with_name(path.name + ".gz")
    return gz if not path.is_file() and gz.is_file() else path


def csv_chunks(
    path: Path, required: Sequence[str], chunk_rows: int | None
) -> Iterator[pd.DataFrame]:
    """A CSV (plain or ``.gz``) as string frames of at most ``chunk_rows`` rows (None: one frame);
    one-line UserErrors for a missing, empty or malformed file or missing columns."""
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        reader = pd.read_csv(path, dtype=str, keep_default_na=False, chunksize=chunk_rows)
        chunks = [reader] if chunk_rows is None else reader
        first = True
        for frame in chunks:
            if first:
                missing = [c for c in required if c not in frame.columns]
                if missing:
                    raise UserError(f"{path}: missing column(s) {', '.join(missing)}")
                first = False
            yield frame
    except pd.errors.EmptyDataError as exc:
        raise UserError(f"{path}: empty file") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError) as exc:
        raise UserError(f"{path}: malformed CSV ({str(exc).splitlines()[0]})") from exc


def iter_trajectories(
    path: str | Path,
    graph: SegmentGraph | None = None,
    on_invalid: str = "skip",
    require_times: bool = False,
    chunk_rows: int | None = TRIP_CHUNK_ROWS,
) -> Iterator[Trajectories]:
    """Read a HOSER trajectory CSV (plain or gzip) in batches of at most ``chunk_rows`` rows.

    Each batch is a :class:`Trajectories` checked as in :func:`read_trajectories` (its
    ``skipped`` counts that batch's rows only); a file larger than memory can be streamed through
    a batch at a time. A file with no rows is a UserError.
    """
    if on_invalid not in ("skip", "error"):
        raise ValueError("on_invalid must be 'skip' or 'error'")
    path = existing_file(path)
    first_row = 0
    for frame in csv_chunks(path, ("rid_list",), chunk_rows):
        if require_times and "time_list" not in frame.columns:
            raise UserError(f"{path}: missing column time_list")
        yield _screen_frame(frame, path, first_row, graph, on_invalid, require_times)
        first_row += len(frame)
    if first_row == 0:
        raise UserError(f"{path}: no trajectories")


def _screen_frame(
    frame: pd.DataFrame,
    path: Path,
    first_row: int,
    graph: SegmentGraph | None,
    on_invalid: str,
    require_times: bool,
) -> Trajectories:
    """Parse and check one batch of CSV rows, vectorised over the batch (HOSER's Beijing has
    ~600,000 rows)."""
    n = len(frame)
    ids = (
        frame["traj_id"].tolist()
        if "traj_id" in frame.columns
        else [str(first_row + i) for i in range(n)]
    )
    reason = np.full(n, None, dtype=object)
    rid_arrays = []
    for k, text in enumerate(frame["rid_list"]):
        try:
            rid_arrays.append(parse_rid_list(text))
        except ValueError:
            rid_arrays.append(np.zeros(0, dtype=np.int64))
            reason[k] = "malformed rid_list"
    screen = RowScreen(rid_arrays, reason)
    if graph is not None:
        screen.check_graph(graph)
    time_arrays: list[np.ndarray | None] = [None] * n
    if "time_list" in frame.columns:
        pieces = [t.strip().split(",") if t.strip() else [] for t in frame["time_list"]]
        counts = np.array([len(p) for p in pieces], dtype=np.int64)
        stamps = pd.to_datetime(
            [x for p in pieces for x in p], format=TIME_FORMAT, errors="coerce"
        ).to_numpy()
        time_arrays = screen.check_times(stamps.astype("datetime64[s]"), counts, require_times)
    return screen.keep(path, first_row, rid_arrays, time_arrays, ids, on_invalid)


def concat_trajectories(path: Path, batches: Iterator[Trajectories]) -> Trajectories:
    """All batches as one :class:`Trajectories`; UserError when none of their rows was valid."""
    out = Trajectories(rids=[], times=[], traj_ids=[])
    for batch in batches:
        out.rids += batch.rids
        out.times += batch.times
        out.traj_ids += batch.traj_ids
        out.skipped.update(batch.skipped)
    if not out.rids:
        reasons = ", ".join(f"{n} {r}" for r, n in out.skipped.items())
        raise UserError(f"{path}: no valid trajectories ({reasons})")
    return out


def read_trajectories(
    path: str | Path,
    graph: SegmentGraph | None = None,
    on_invalid: str = "skip",
    require_times: bool = False,
    chunk_rows: int | None = TRIP_CHUNK_ROWS,
) -> Trajectories:
    """Read a HOSER trajectory CSV (``rid_list`` required, ``time_list`` optional).

    ``path`` may be gzip-compressed (``train.csv.gz``, also found when ``train.csv`` is asked for
    and absent). The text is parsed ``chunk_rows`` rows at a time (see :func:`iter_trajectories`),
    so only the parsed arrays of a large file are held. With ``graph`` given, every id must be a
    segment of the graph and every consecutive pair a legal transition. Invalid rows (malformed
    lists, unknown ids, illegal transitions, time lists of the wrong length or going backwards)
    are skipped and counted in ``skipped`` when ``on_invalid="skip"``, or raise a one-line
    UserError naming the first bad row when ``on_invalid="error"``. A file with no rows or no
    valid rows is a UserError either way.
    """
    batches = iter_trajectories(path, graph, on_invalid, require_times, chunk_rows)
    return concat_trajectories(existing_file(path), batches)


def write_trajectories(
    path: str | Path,
    rids: Sequence[Sequence[int]],
    times: Sequence[np.ndarray | None] | None = None,
    traj_ids: Sequence[str] | None = None,
    user_ids: Sequence[str] | None = None,
) -> None:
    """Write trajectories as a HOSER CSV (``mm_id,user_id,traj_id,rid_list,time_list``), atomically.

    ``times[k]`` (one ``datetime64`` per segment) may be None, giving an empty ``time_list``.
    """
    with atomic_open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(TRAJ_COLUMNS)
        for k, seq in enumerate(rids):
            t = None if times is None else times[k]
            if t is not None and len(t) != len(seq):
                raise ValueError(f"trajectory {k}: {len(t)} times for {len(seq)} segments")
            traj_id = traj_ids[k] if traj_ids is not None else k
            user_id = user_ids[k] if user_ids is not None else traj_id
            writer.writerow(
                [
                    k,
                    user_id,
                    traj_id,
                    format_rid_list(seq),
                    "" if t is None else format_time_list(t),
                ]
            )


def read_dataset(
    data_dir: str | Path, on_invalid: str = "skip"
) -> tuple[SegmentGraph, dict[str, Trajectories]]:
    """The road network and whichever of ``train.csv``/``val.csv``/``test.csv`` exist in ``data_dir``."""
    data_dir = Path(data_dir)
    graph = read_roadmap(data_dir)
    splits = {
        s: read_trajectories(data_dir / f"{s}.csv", graph, on_invalid)
        for s in SPLITS
        if existing_file(data_dir / f"{s}.csv").is_file()
    }
    if not splits:
        raise UserError(f"{data_dir}: no train.csv, val.csv or test.csv")
    return graph, splits
