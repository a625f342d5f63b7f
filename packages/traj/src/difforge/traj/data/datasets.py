"""Datasets shipped inside the package (HOSER layout), so tests and the demo never run SUMO.

Each folder holds ``roadmap.geo``, ``roadmap.rel``, ``train.csv``, ``val.csv``, ``test.csv``,
``meta.json`` (how it was made, statistics) and a README; its script in ``data_scripts/``
regenerates it deterministically:

- ``helsinki_drive``: central Helsinki, SUMO car trips with noisy route choice
  (``traj_helsinki.py``): the data is noise around the shortest path;
- ``helsinki_drive_dua`` (the default, the shipped model's): the same network and demand with
  habitual route choice (main-road and
  traffic-light costs shared by all drivers, three congestion-aware assignment rounds, little
  per-driver noise; ``traj_helsinki.py --routing habitual``): the most frequent route per OD pair
  beats the length-shortest path on HOSER's pairwise metrics, as in real GPS data;
- ``helsinki_bike``: the same area's bike network, SUMO bicycle trips
  (``traj_helsinki.py --mode bike``);
- ``helsinki_bike_on_drive``: ``helsinki_bike``'s trips map-matched onto ``helsinki_drive``'s
  segments, every split kept (``traj_helsinki_bike_on_drive.py``): the zero-shot mode-transfer
  set, where a car-trained and a bicycle-trained model share one vocabulary and one test set;
- ``berlin_adlershof_drive``: the second city, a SUMO network from the eclipse-sumo wheel
  (``traj_berlin_adlershof.py``).

Synthetic cities for the scaling benchmark (up to ~40,000 segments) are generated on the fly
(:mod:`difforge.traj.data.synthetic`), never shipped.
"""

from __future__ import annotations

from pathlib import Path

from difforge.core.errors import UserError

DATASETS_DIR = Path(__file__).resolve().parent.parent / "datasets"
DEFAULT_DATASET = "helsinki_drive_dua"


def available_datasets() -> list[str]:
    """Names of the shipped dataset folders (each holds roadmap.geo, roadmap.rel, train/val/test.csv)."""
    if not DATASETS_DIR.is_dir():
        return []
    return sorted(p.name for p in DATASETS_DIR.iterdir() if (p / "roadmap.geo").is_file())


def dataset_dir(name: str = DEFAULT_DATASET) -> Path:
    """Folder of the shipped dataset ``name`` (default: central Helsinki, simulated car trips)."""
    path = DATASETS_DIR / name
    if not (path / "roadmap.geo").is_file():
        raise UserError(
            f"no shipped dataset {name!r}; available: {', '.join(available_datasets()) or 'none'}"
        )
    return path
