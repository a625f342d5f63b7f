"""Road networks, segment graphs, HOSER/LibCity files, GPS traces, map matching, SUMO simulation.

Main entry points:

- :func:`prepare_roadmap` (``difforge-traj prepare``): OSM XML / .osm.pbf / GraphML -> roadmap.geo/.rel
- :func:`match_gps_file` (``difforge-traj match``): GPS CSV/GPX -> HOSER trajectory CSV
- :class:`SegmentGraph`, :func:`read_roadmap`, :func:`read_trajectories`, :func:`read_dataset`
  (plain or gzipped files); :func:`iter_trajectories` streams a large trip CSV in batches
- :func:`read_libcity` / :func:`iter_libcity_trajectories`: LibCity atomic files (.geo/.rel/.dyna)
- :func:`dataset_dir`: the shipped datasets (default ``helsinki_drive_dua``; also
  ``helsinki_drive``, ``helsinki_bike``, ``berlin_adlershof_drive``, ``helsinki_bike_on_drive``)
- :func:`synthetic_city` / :func:`synthetic_trips`: a procedural grid city of any size
  (``synthetic_city(110)`` has about 40,000 segments, the Beijing vocabulary) with trips;
  ``synthetic.activity_trips`` / ``synthetic.write_synthetic_dataset``: city-like trips and a
  HOSER-layout folder for the scaling benchmark

The SUMO driver (``difforge.traj.data.sumo``) needs the optional ``sumo`` extra and is imported
only by the data scripts.
"""

from difforge.traj.data.datasets import DEFAULT_DATASET, available_datasets, dataset_dir
from difforge.traj.data.gps import GpsTrace, clean_traces, read_gps
from difforge.traj.data.hoser import (
    Trajectories,
    iter_trajectories,
    read_dataset,
    read_roadmap,
    read_trajectories,
    write_roadmap,
    write_trajectories,
)
from difforge.traj.data.libcity import iter_libcity_trajectories, read_libcity
from difforge.traj.data.matching import MapMatcher, match_gps_file, match_traces
from difforge.traj.data.network import MODES, load_road_network
from difforge.traj.data.prepare import prepare_roadmap
from difforge.traj.data.segments import UTURN_POLICIES, SegmentGraph, build_segment_graph
from difforge.traj.data.synthetic import synthetic_city, synthetic_trips

__all__ = [
    "DEFAULT_DATASET",
    "MODES",
    "UTURN_POLICIES",
    "GpsTrace",
    "MapMatcher",
    "SegmentGraph",
    "Trajectories",
    "available_datasets",
    "build_segment_graph",
    "clean_traces",
    "dataset_dir",
    "iter_libcity_trajectories",
    "iter_trajectories",
    "load_road_network",
    "match_gps_file",
    "match_traces",
    "prepare_roadmap",
    "read_dataset",
    "read_gps",
    "read_libcity",
    "read_roadmap",
    "read_trajectories",
    "synthetic_city",
    "synthetic_trips",
    "write_roadmap",
    "write_trajectories",
]
