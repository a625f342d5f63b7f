"""Read LibCity atomic files: a road network (``.geo``, ``.rel``) and map-matched trips (``.dyna``).

A LibCity data set is a folder ``NAME/`` holding ``NAME.geo``, ``NAME.rel`` and ``NAME.dyna``
(plain CSV, each also accepted gzip-compressed as ``NAME.dyna.gz``)::

    NAME.geo    geo_id,type,coordinates,<properties: highway, length, lanes, ...>
    NAME.rel    rel_id,type,origin_id,destination_id
    NAME.dyna   dyna_id,type,time,entity_id,[traj_id,]location

``geo_id`` may be any distinct integers (segment ``i`` of our graph is the ``i``-th ``.geo`` row);
``.rel`` lists the legal transitions between ``geo_id``s. Each ``.dyna`` row is one observation of a
moving object: ``time`` (ISO-8601) and ``location`` (the ``geo_id`` of the road it is on). The rows
of one trajectory (same ``entity_id`` and, when present, ``traj_id``) are consecutive and in time
order, as LibCity writes them; repeated observations on the same road collapse to one segment
entered at the first one's time, which gives HOSER's ``rid_list``/``time_list`` form. A ``.dyna``
with coordinates but no ``location`` holds raw GPS: map-match it first (``difforge-traj match``).

:func:`iter_libcity_trajectories` streams the ``.dyna`` file in batches, so a file larger than
memory can be converted or filtered a batch at a time; :func:`read_libcity` reads it whole;
:func:`libcity_to_hoser` (``difforge-traj convert-libcity``) writes it as a HOSER dataset folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from difforge.core.errors import UserError
from difforge.traj.data.hoser import (
    TRIP_CHUNK_ROWS,
    RowScreen,
    Trajectories,
    concat_trajectories,
    csv_chunks,
    existing_file,
    read_roadmap_files,
    segment_index,
    write_roadmap,
    write_trajectories,
)
from difforge.traj.data.segments import SegmentGraph

DYNA_COLUMNS = ("time", "entity_id")


def libcity_paths(folder: str | Path, name: str | None = None) -> dict[str, Path]:
    """``{"geo", "rel", "dyna"}`` -> file paths of the data set ``name`` (default: the folder's
    name) in ``folder``; a ``.gz`` file is used where the plain one is absent."""
    folder = Path(folder)
    name = name or folder.name
    return {ext: existing_file(folder / f"{name}.{ext}") for ext in ("geo", "rel", "dyna")}


def read_libcity_roadmap(
    folder: str | Path, name: str | None = None
) -> tuple[SegmentGraph, np.ndarray]:
    """The road network of a LibCity data set and the ``geo_id`` of every segment."""
    paths = libcity_paths(folder, name)
    return read_roadmap_files(paths["geo"], paths["rel"], name or Path(folder).name, renumber=True)


def _trajectory_keys(frame: pd.DataFrame) -> pd.Series:
    if "traj_id" in frame.columns:
        return frame["entity_id"] + "_" + frame["traj_id"]
    return frame["entity_id"]


def _grouped(path: Path, chunk_rows: int | None) -> Iterator[pd.DataFrame]:
    """``.dyna`` rows in batches that never split a trajectory (the last, possibly unfinished
    trajectory of a batch moves to the next one)."""
    carry = None
    for frame in csv_chunks(path, DYNA_COLUMNS, chunk_rows):
        if "location" not in frame.columns:
            raise UserError(
                f"{path}: no location column (road ids); map-match GPS points first "
                "(difforge-traj match)"
            )
        if carry is not None:
            frame = pd.concat([carry, frame], ignore_index=True)
        keys = _trajectory_keys(frame)
        last = keys.iloc[-1] if len(frame) else None
        tail = (keys == last).to_numpy()
        # rows of the last key after the last change of key: only they may continue
        cut = len(frame) - int(np.argmin(tail[::-1])) if not tail.all() else 0
        carry = frame.iloc[cut:]
        if cut:
            yield frame.iloc[:cut].reset_index(drop=True)
    if carry is not None and len(carry):
        yield carry.reset_index(drop=True)


def _screen_dyna(
    frame: pd.DataFrame,
    path: Path,
    first: int,
    graph: SegmentGraph,
    geo_ids: np.ndarray,
    on_invalid: str,
) -> Trajectories:
    """One batch of whole trajectories -> checked segment sequences with entry times."""
    keys = _trajectory_keys(frame).to_numpy()
    new_traj = np.r_[True, keys[1:] != keys[:-1]]
    traj_of_row = np.cumsum(new_traj) - 1
    location = pd.to_numeric(frame["location"], errors="coerce").to_numpy()
    bad_location = ~np.isfinite(location)
    segment = segment_index(geo_ids, np.where(bad_location, -1, location).astype(np.int64))
    segment[bad_location] = -1
    # a new segment starts where the trajectory starts or the road changes
    keep = new_traj | np.r_[True, segment[1:] != segment[:-1]]
    stamps = pd.to_datetime(frame["time"], utc=True, format="ISO8601", errors="coerce")
    stamps = stamps.dt.tz_localize(None).to_numpy().astype("datetime64[s]")[keep]
    counts = np.bincount(traj_of_row[keep], minlength=traj_of_row[-1] + 1)
    rid_arrays = np.split(segment[keep], np.cumsum(counts)[:-1])
    reason = np.full(len(counts), None, dtype=object)
    screen = RowScreen(rid_arrays, reason)
    screen.flag(np.unique(traj_of_row[bad_location]), "malformed location")
    screen.check_graph(graph)
    times = screen.check_times(stamps, counts, require_times=True)
    ids = keys[new_traj]
    return screen.keep(path, first, rid_arrays, times, ids, on_invalid, unit="trajectory")


def iter_libcity_trajectories(
    folder: str | Path,
    graph: SegmentGraph | None = None,
    geo_ids: np.ndarray | None = None,
    name: str | None = None,
    on_invalid: str = "skip",
    chunk_rows: int | None = TRIP_CHUNK_ROWS,
) -> Iterator[Trajectories]:
    """The ``.dyna`` trajectories of a LibCity data set, about ``chunk_rows`` rows at a time
    (None: all at once), as :class:`Trajectories` in our segment ids with entry times.

    ``graph``/``geo_ids`` default to :func:`read_libcity_roadmap` of the same folder. Invalid
    trajectories (unknown roads, illegal transitions, times unparsable or going backwards) are
    skipped and counted, or raise a one-line UserError when ``on_invalid="error"``.
    """
    if on_invalid not in ("skip", "error"):
        raise ValueError("on_invalid must be 'skip' or 'error'")
    if graph is None or geo_ids is None:
        graph, geo_ids = read_libcity_roadmap(folder, name)
    path = libcity_paths(folder, name)["dyna"]
    first = 0
    for frame in _grouped(path, chunk_rows):
        batch = _screen_dyna(frame, path, first, graph, geo_ids, on_invalid)
        first += len(batch) + sum(batch.skipped.values())
        yield batch
    if first == 0:
        raise UserError(f"{path}: no trajectories")


def read_libcity(
    folder: str | Path,
    name: str | None = None,
    on_invalid: str = "skip",
    chunk_rows: int | None = TRIP_CHUNK_ROWS,
) -> tuple[SegmentGraph, np.ndarray, Trajectories]:
    """A LibCity data set: road network, ``geo_id`` of every segment, and all its trajectories."""
    graph, geo_ids = read_libcity_roadmap(folder, name)
    batches = iter_libcity_trajectories(folder, graph, geo_ids, name, on_invalid, chunk_rows)
    return graph, geo_ids, concat_trajectories(libcity_paths(folder, name)["dyna"], batches)


def libcity_to_hoser(
    folder: str | Path,
    out_dir: Path,
    name: str | None = None,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
) -> list[str]:
    """Write a LibCity data set as a HOSER dataset folder (``roadmap.geo``/``.rel`` and
    ``train``/``val``/``test.csv``, split at random by ``seed``) into the existing ``out_dir``, so
    that every command that takes ``--data`` reads it. Segment ids become row numbers of the new
    ``roadmap.geo``; each trip keeps its LibCity trajectory key as ``traj_id``. Returns a summary."""
    graph, _geo_ids, trips = read_libcity(folder, name)
    if len(trips) < 3:
        raise UserError(f"{folder}: {len(trips)} usable trajectories; need 3 for train/val/test")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(trips))
    n_val = max(round(fractions[1] * len(trips)), 1)
    n_train = len(trips) - n_val - max(round(fractions[2] * len(trips)), 1)
    splits = {
        "train": order[:n_train],
        "val": order[n_train : n_train + n_val],
        "test": order[n_train + n_val :],
    }
    write_roadmap(graph, out_dir)
    for split, rows in splits.items():
        write_trajectories(
            out_dir / f"{split}.csv",
            [trips.rids[k] for k in rows],
            [trips.times[k] for k in rows],
            traj_ids=[trips.traj_ids[k] for k in rows],
        )
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(trips.skipped.items()))
    return [
        f"{graph.num_segments} segments, {graph.num_transitions} transitions",
        "trips: " + ", ".join(f"{split} {len(rows)}" for split, rows in splits.items()),
        *([f"skipped: {skipped}"] if skipped else []),
    ]
