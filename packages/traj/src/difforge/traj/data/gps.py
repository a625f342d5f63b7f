"""Raw GPS traces: read CSV (lon/lat[/time][/trajectory id]) and GPX files, and clean them.

CSV columns are found by name, case-insensitively: longitude ``lon``/``lng``/``longitude``/``x``,
latitude ``lat``/``latitude``/``y``, time ``time``/``timestamp``/``datetime``/``t`` (ISO-8601
text or Unix seconds), and an optional trace id ``traj_id``/``trip_id``/``track_id``/``id``/
``vehicle`` that splits the file into several traces (rows keep their file order within a trace).
``.csv.gz`` is read too. GPX: every track segment is a trace (routes when there are no tracks).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from difforge.core.errors import UserError
from difforge.traj.data.geo import haversine_m

_LON = ("lon", "lng", "long", "longitude", "x")
_LAT = ("lat", "latitude", "y")
_TIME = ("time", "timestamp", "datetime", "date_time", "t")
_ID = ("traj_id", "trip_id", "track_id", "trace_id", "id", "vehicle", "vehicle_id")


@dataclass
class GpsTrace:
    """One trace: float64 ``lon``/``lat`` arrays and ``time`` as ``datetime64[s]`` or None."""

    trace_id: str
    lon: np.ndarray
    lat: np.ndarray
    time: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.lon)


@dataclass
class CleaningReport:
    """Points and traces removed by :func:`clean_trace` / :func:`clean_traces`, by reason."""

    points_in: int = 0
    points_out: int = 0
    removed: Counter = field(default_factory=Counter)
    traces_skipped: int = 0

    def line(self) -> str:
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(self.removed.items())) or "none"
        return (
            f"GPS cleaning: kept {self.points_out} of {self.points_in} fixes (removed: {reasons}); "
            f"{self.traces_skipped} traces too short to use"
        )


def _pick(columns: list[str], names: tuple[str, ...]) -> str | None:
    lower = {c.strip().lower(): c for c in columns}
    return next((lower[n] for n in names if n in lower), None)


def _parse_times(values: pd.Series) -> np.ndarray:
    """ISO-8601 text (any offset, converted to UTC) or Unix seconds -> ``datetime64[s]``."""
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all():
        return np.round(numeric.to_numpy(dtype=np.float64)).astype(np.int64).astype("datetime64[s]")
    parsed = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
    # unparsable times become NaT and are removed (and counted) by clean_trace
    return parsed.dt.tz_localize(None).to_numpy().astype("datetime64[s]")


def _read_csv_traces(path: Path) -> list[GpsTrace]:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError as exc:
        raise UserError(f"{path}: empty file") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise UserError(f"{path}: malformed CSV ({str(exc).splitlines()[0]})") from exc
    lon_col, lat_col = _pick(list(frame.columns), _LON), _pick(list(frame.columns), _LAT)
    if lon_col is None or lat_col is None:
        raise UserError(
            f"{path}: needs longitude and latitude columns (e.g. lon,lat); found {', '.join(frame.columns)}"
        )
    if frame.empty:
        raise UserError(f"{path}: no GPS points")
    time_col = _pick(list(frame.columns), _TIME)
    id_col = _pick(list(frame.columns), _ID)
    lon = pd.to_numeric(frame[lon_col], errors="coerce").to_numpy(dtype=np.float64)
    lat = pd.to_numeric(frame[lat_col], errors="coerce").to_numpy(dtype=np.float64)
    times = _parse_times(frame[time_col]) if time_col else None
    ids = (
        frame[id_col].to_numpy()
        if id_col
        else np.full(len(frame), path.stem.split(".")[0], dtype=object)
    )
    traces = []
    for trace_id in pd.unique(ids):
        rows = np.flatnonzero(ids == trace_id)
        traces.append(
            GpsTrace(str(trace_id), lon[rows], lat[rows], None if times is None else times[rows])
        )
    return traces


def _read_gpx_traces(path: Path) -> list[GpsTrace]:
    import gpxpy
    import gpxpy.gpx

    try:
        with open(path, encoding="utf-8") as fh:
            gpx = gpxpy.parse(fh)
    except (gpxpy.gpx.GPXException, ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a readable GPX file ({str(exc).splitlines()[0]})") from exc
    point_lists = []
    for t, track in enumerate(gpx.tracks):
        for s, segment in enumerate(track.segments):
            point_lists.append((f"{track.name or f'track{t}'}/{s}", segment.points))
    if not point_lists:
        point_lists = [
            (route.name or f"route{r}", route.points) for r, route in enumerate(gpx.routes)
        ]
    traces = []
    for name, points in point_lists:
        if not points:
            continue
        lon = np.array([p.longitude for p in points], dtype=np.float64)
        lat = np.array([p.latitude for p in points], dtype=np.float64)
        stamps = [p.time for p in points]
        time = None
        if all(s is not None for s in stamps):
            time = (
                pd.to_datetime(stamps, utc=True)
                .tz_localize(None)
                .to_numpy()
                .astype("datetime64[s]")
            )
        traces.append(GpsTrace(name, lon, lat, time))
    if not traces:
        raise UserError(f"{path}: no track points")
    return traces


def read_gps(path: str | Path) -> list[GpsTrace]:
    """Read raw GPS traces from ``.csv``, ``.csv.gz`` or ``.gpx`` (points as found, not cleaned)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz", ".txt")):
        return _read_csv_traces(path)
    if name.endswith(".gpx"):
        return _read_gpx_traces(path)
    raise UserError(f"{path}: unknown GPS format (use .csv or .gpx)")


def clean_trace(
    trace: GpsTrace,
    report: CleaningReport | None = None,
    max_speed_kmh: float = 200.0,
) -> GpsTrace:
    """Remove unusable fixes, in this order, counting each reason in ``report``:

    - NaN or out-of-range coordinates (|lon| > 180, |lat| > 90) or unparsable times;
    - repeated fixes (same position as the previous kept fix: a logger standing still);
    - times that do not increase (duplicates or clock jumps back);
    - jumps implying more than ``max_speed_kmh`` from the previous kept fix (needs times).
    """
    report = report if report is not None else CleaningReport()
    report.points_in += len(trace)
    lon, lat, time = trace.lon, trace.lat, trace.time
    valid = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lon) <= 180) & (np.abs(lat) <= 90)
    report.removed["invalid coordinates"] += int((~valid).sum())
    if time is not None:
        bad_time = np.isnat(time) & valid
        report.removed["unparsable time"] += int(bad_time.sum())
        valid &= ~np.isnat(time)
    keep: list[int] = []
    for k in np.flatnonzero(valid):
        if keep:
            prev = keep[-1]
            if lon[k] == lon[prev] and lat[k] == lat[prev]:
                report.removed["repeated fix"] += 1
                continue
            if time is not None:
                dt_s = (time[k] - time[prev]).astype(np.int64)
                if dt_s <= 0:
                    report.removed["time not increasing"] += 1
                    continue
                if haversine_m(lon[prev], lat[prev], lon[k], lat[k]) / dt_s * 3.6 > max_speed_kmh:
                    report.removed["speed jump"] += 1
                    continue
        keep.append(int(k))
    idx = np.asarray(keep, dtype=np.int64)
    report.points_out += len(idx)
    return GpsTrace(trace.trace_id, lon[idx], lat[idx], None if time is None else time[idx])


def clean_traces(
    traces: list[GpsTrace], min_points: int = 2
) -> tuple[list[GpsTrace], CleaningReport]:
    """Clean every trace; traces left with fewer than ``min_points`` fixes are skipped and counted."""
    report = CleaningReport()
    cleaned = []
    for trace in traces:
        out = clean_trace(trace, report)
        if len(out) >= min_points:
            cleaned.append(out)
        else:
            report.traces_skipped += 1
    return cleaned, report
