"""Hairstyle parameters and the style families they are drawn from.

A style is 25 geometric parameters (what the groom generator reads) plus 3 appearance parameters
(what the renderer reads), a family name and the seed that fixes every random choice. Each family
is a set of ranges over the parameters; a seed picks the family (``seed % len(FAMILIES)``, so any
run of consecutive seeds is balanced) and then every parameter, deterministically.

Seeds at or above :data:`HELD_OUT_SEED_BASE` are reserved for evaluation and never used to train.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from difforge.core.errors import UserError

HELD_OUT_SEED_BASE = 1_000_000
NO_CUT = -1.0  # a cut plane this low never touches a strand


@dataclass(frozen=True)
class StyleParams:
    """One hairstyle. Lengths in metres, frequencies in cycles per metre of strand."""

    family: str
    seed: int
    # Length and physics.
    length: float  # centreline length of a full-length strand
    length_jitter: float  # relative per-strand length spread
    stiffness: float  # arc length near the root (m) over which gravity ramps in
    gravity: float  # bending toward -y, radians per metre
    lift: float  # 0 = roots lie along the comb direction, 1 = along the scalp normal
    # Comb field.
    comb_back: float  # pull toward the back of the head
    part_offset: float  # x of the parting line (m)
    part_strength: float  # 0 = no parting, 1 = hair combed hard away from it
    bangs: float  # depth of the fringe zone behind the front hairline (rad of polar angle)
    # Cuts.
    fringe_y: float  # height of the fringe cut (m); NO_CUT = none
    cut_y: float  # height of a horizontal cut (bob); NO_CUT = none
    # Clumping, curls, waves, frizz.
    clump_count: int
    clump_strength: float
    curl_radius: float
    curl_frequency: float
    curl_start: float  # fraction of the strand before curls start
    wave_amplitude: float
    wave_frequency: float
    frizz: float  # tip displacement amplitude (m)
    # Density map.
    density: float  # overall density multiplier in [0, 1]
    hairline: float  # front hairline shift (rad; negative = higher forehead)
    recession: float  # temple recession (rad)
    thinning: float  # crown thinning in [0, 1]
    side_density: float  # density on the sides (|x| beyond the band); mohawk = 0
    side_length: float  # length multiplier on the sides; undercut < 0.2
    # Appearance (renderer only).
    melanin: float  # 0 = platinum blond, 1 = black
    redness: float
    skin_tone: float  # 0 = light, 1 = dark

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> StyleParams:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        missing = sorted(names - set(values))
        if unknown or missing:
            raise UserError(f"style parameters: unknown {unknown}, missing {missing}")
        return cls(**values)

    def geometry_vector(self) -> np.ndarray:
        """The 25 numeric geometry parameters, in field order (for probes and regressors)."""
        return np.array([getattr(self, name) for name in GEOMETRY_PARAMETERS], dtype=np.float64)


GEOMETRY_PARAMETERS = tuple(
    f.name
    for f in fields(StyleParams)
    if f.name not in ("family", "seed", "melanin", "redness", "skin_tone")
)

# Neutral values every family starts from; a family overrides some with fixed values or ranges.
_BASE: dict[str, float | tuple[float, float]] = {
    "length": (0.08, 0.12),
    "length_jitter": (0.05, 0.15),
    "stiffness": (0.01, 0.03),
    "gravity": (20.0, 35.0),
    "lift": (0.25, 0.4),
    "comb_back": (0.2, 0.4),
    "part_offset": 0.0,
    "part_strength": 0.0,
    "bangs": 0.0,
    "fringe_y": NO_CUT,
    "cut_y": NO_CUT,
    "clump_count": (40, 90),
    "clump_strength": (0.15, 0.35),
    "curl_radius": 0.0,
    "curl_frequency": 0.0,
    "curl_start": 0.1,
    "wave_amplitude": 0.0,
    "wave_frequency": 0.0,
    "frizz": (0.0005, 0.0015),
    "density": (0.85, 1.0),
    "hairline": (-0.05, 0.05),
    "recession": (0.0, 0.05),
    "thinning": 0.0,
    "side_density": 1.0,
    "side_length": 1.0,
    "melanin": (0.0, 1.0),
    "redness": (0.0, 0.4),
    "skin_tone": (0.0, 1.0),
}

_SIDE_PART = (0.022, 0.042)  # |part_offset|; the side is drawn at random

FAMILIES: dict[str, dict[str, float | tuple[float, float]]] = {
    "buzz": {
        "length": (0.005, 0.012), "stiffness": (0.003, 0.006), "gravity": (2.0, 6.0), "lift": (0.08, 0.16),
        "clump_strength": (0.0, 0.1), "frizz": (0.0001, 0.0003), "comb_back": (0.3, 0.6),
    },
    "short_straight": {
        "length": (0.03, 0.055), "lift": (0.3, 0.5), "gravity": (10.0, 20.0), "comb_back": (0.3, 0.6),
        "part_strength": (0.2, 0.5), "part_offset": _SIDE_PART,
    },
    "slicked_back": {
        "length": (0.09, 0.15), "lift": (0.03, 0.1), "comb_back": (0.9, 1.0), "gravity": (25.0, 40.0),
        "stiffness": (0.004, 0.01), "clump_strength": (0.3, 0.5),
    },
    "side_part": {
        "length": (0.09, 0.17), "part_offset": _SIDE_PART, "part_strength": (0.75, 1.0),
        "comb_back": (0.05, 0.2), "gravity": (30.0, 45.0), "lift": (0.2, 0.35),
    },
    "bob": {
        "length": (0.22, 0.3), "cut_y": (-0.11, -0.06), "part_strength": (0.5, 0.8), "part_offset": (-0.01, 0.01),
        "gravity": (45.0, 65.0), "comb_back": (0.0, 0.1), "clump_strength": (0.1, 0.25),
    },
    "long_straight": {
        "length": (0.35, 0.5), "part_strength": (0.6, 0.9), "part_offset": (-0.008, 0.008),
        "gravity": (55.0, 75.0), "comb_back": (0.0, 0.15), "clump_strength": (0.2, 0.35),
    },
    "wavy": {
        "length": (0.25, 0.42), "wave_amplitude": (0.007, 0.014), "wave_frequency": (6.0, 11.0),
        "part_strength": (0.5, 0.8), "part_offset": (-0.02, 0.02), "gravity": (45.0, 65.0),
        "comb_back": (0.0, 0.15), "clump_strength": (0.35, 0.55), "frizz": (0.001, 0.0025),
    },
    "curly": {
        "length": (0.15, 0.28), "curl_radius": (0.006, 0.011), "curl_frequency": (14.0, 24.0),
        "curl_start": (0.08, 0.2), "gravity": (30.0, 45.0), "lift": (0.35, 0.5),
        "clump_strength": (0.5, 0.7), "frizz": (0.0015, 0.003), "part_strength": (0.2, 0.5),
    },
    "coily": {
        "length": (0.06, 0.11), "lift": (0.8, 0.95), "gravity": (1.0, 5.0), "stiffness": (0.05, 0.1),
        "curl_radius": (0.0025, 0.004), "curl_frequency": (60.0, 100.0), "curl_start": (0.0, 0.05),
        "frizz": (0.003, 0.006), "clump_strength": (0.2, 0.4), "comb_back": (0.0, 0.1),
    },
    "bangs": {
        "length": (0.2, 0.4), "bangs": (0.25, 0.4), "fringe_y": (0.0, 0.03), "gravity": (50.0, 70.0),
        "part_strength": 0.0, "comb_back": (0.0, 0.1), "clump_strength": (0.2, 0.35),
    },
    "receding": {
        "length": (0.03, 0.07), "hairline": (-0.25, -0.12), "recession": (0.25, 0.45),
        "comb_back": (0.5, 0.8), "lift": (0.15, 0.3), "gravity": (10.0, 20.0), "density": (0.7, 0.9),
    },
    "thinning_crown": {
        "length": (0.02, 0.05), "thinning": (0.75, 1.0), "recession": (0.1, 0.25), "density": (0.6, 0.8),
        "lift": (0.1, 0.25), "gravity": (8.0, 15.0), "comb_back": (0.3, 0.6),
    },
    "mohawk": {
        "length": (0.06, 0.12), "side_density": 0.0, "lift": (0.9, 1.0), "gravity": (0.0, 3.0),
        "stiffness": (0.08, 0.15), "comb_back": (0.0, 0.1), "clump_strength": (0.5, 0.7),
    },
    "undercut": {
        "length": (0.1, 0.16), "side_length": (0.05, 0.12), "comb_back": (0.8, 1.0), "lift": (0.35, 0.5),
        "gravity": (5.0, 10.0), "stiffness": (0.04, 0.07), "clump_strength": (0.3, 0.5),
    },
}  # fmt: skip


def family_for_seed(seed: int) -> str:
    return list(FAMILIES)[seed % len(FAMILIES)]


def sample_style(seed: int, family: str | None = None) -> StyleParams:
    """Draw a style deterministically from ``seed`` (family from the seed unless given)."""
    family = family_for_seed(seed) if family is None else family
    if family not in FAMILIES:
        raise UserError(f"unknown hair style family {family!r}; choose from {', '.join(FAMILIES)}")
    rng = np.random.default_rng([seed, list(FAMILIES).index(family)])
    spec = {**_BASE, **FAMILIES[family]}
    values: dict[str, Any] = {}
    for name in (f.name for f in fields(StyleParams) if f.name not in ("family", "seed")):
        rule = spec[name]
        value = float(rng.uniform(*rule)) if isinstance(rule, tuple) else float(rule)
        values[name] = value
    values["clump_count"] = round(values["clump_count"])
    if spec["part_offset"] is _SIDE_PART:
        values["part_offset"] *= float(rng.choice([-1.0, 1.0]))
    return StyleParams(family=family, seed=int(seed), **values)
