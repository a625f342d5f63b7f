"""Datasets shipped inside the package (HOSER layout), so tests and the demo never run SUMO."""

from __future__ import annotations

from pathlib import Path

from difforge.core.errors import UserError

DATASETS_DIR = Path(__file__).resolve().parent.parent / "datasets"
DEFAULT_DATASET = "helsinki_drive"


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
