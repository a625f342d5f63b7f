"""Hairstyle parameters and the style families they are drawn from.

A style is 27 geometric parameters (what the groom generator reads) plus 3 appearance parameters
(what the renderer reads), a family name and the seed that fixes every random choice. Each family
is a set of ranges over the parameters. A style set (:data:`STYLE_SETS`) is an ordered tuple of
families; a seed picks the family of its set (``seed % len(families)``, so any run of consecutive
seeds is balanced) and then every parameter, deterministically. The ``classic`` set is the 14
:data:`FAMILIES` every model up to ``photo1`` trained on; the ``photo`` set adds the families of
:data:`PHOTO_FAMILIES` (short hair lying on the scalp, frizzy volume) that real portraits showed
missing, so the classic set's seeds keep their styles.

Seeds at or above :data:`HELD_OUT_SEED_BASE` are reserved for evaluation and never used to train.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, fields
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
    # Added for the photo set; defaults keep older styles (and their params.json) as they were.
    hug: float = 0.0  # 0 = strands grow freely, 1 = they follow the scalp's curve (lie on it)
    stray: float = 0.0  # fraction of stray fibres that leave their clump and wander off

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> StyleParams:
        names = {f.name for f in fields(cls)}
        optional = {f.name for f in fields(cls) if f.default is not MISSING}
        unknown = sorted(set(values) - names)
        missing = sorted(names - optional - set(values))
        if unknown or missing:
            raise UserError(f"style parameters: unknown {unknown}, missing {missing}")
        return cls(**values)

    def geometry_vector(self) -> np.ndarray:
        """The 27 numeric geometry parameters, in field order (for probes and regressors)."""
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
    "hug": 0.0,
    "stray": 0.0,
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


# Families of the photo set: what the classic families lack on real portraits (RESULTS.md,
# "Photo styles"): short hair of 5-15 cm that lies on the scalp (the classic short families are
# 1-7 cm and stand off it), and voluminous frizz (fine high-frequency curl, loose clumps, strays).
PHOTO_FAMILIES: dict[str, dict[str, float | tuple[float, float]]] = {
    "short_crop": {
        "length": (0.06, 0.09), "hug": (0.7, 0.95), "lift": (0.1, 0.25), "gravity": (4.0, 10.0),
        "stiffness": (0.01, 0.02), "comb_back": (0.7, 1.0), "part_strength": (0.2, 0.6),
        "part_offset": _SIDE_PART, "clump_strength": (0.1, 0.25), "frizz": (0.0003, 0.001),
    },
    "short_layered": {
        "length": (0.09, 0.13), "hug": (0.5, 0.8), "lift": (0.3, 0.5), "gravity": (12.0, 22.0),
        "stiffness": (0.01, 0.02), "comb_back": (0.0, 0.4), "part_strength": (0.4, 0.8),
        "part_offset": _SIDE_PART, "clump_strength": (0.2, 0.4), "wave_amplitude": (0.0, 0.004),
        "wave_frequency": (8.0, 14.0), "frizz": (0.0005, 0.0015),
    },
    "frizzy": {
        "length": (0.05, 0.1), "length_jitter": (0.2, 0.35), "lift": (0.4, 0.6), "gravity": (6.0, 14.0),
        "stiffness": (0.03, 0.06), "comb_back": (0.1, 0.35), "clump_strength": (0.05, 0.2),
        "curl_radius": (0.001, 0.002), "curl_frequency": (60.0, 110.0), "curl_start": (0.0, 0.05),
        "wave_amplitude": (0.006, 0.014), "wave_frequency": (4.0, 8.0), "frizz": (0.004, 0.008),
        "stray": (0.08, 0.2),
    },
}  # fmt: skip

# Every family, for lookups; the classic ones keep their positions (their random streams).
ALL_FAMILIES = {**FAMILIES, **PHOTO_FAMILIES}
# The photo set starts with its new families, so that any few seeds from 0 include them.
STYLE_SETS: dict[str, tuple[str, ...]] = {
    "classic": tuple(FAMILIES),
    "photo": (*PHOTO_FAMILIES, *FAMILIES),
}


def style_set_families(style_set: str) -> tuple[str, ...]:
    if style_set not in STYLE_SETS:
        raise UserError(f"unknown style set {style_set!r}; choose from {', '.join(STYLE_SETS)}")
    return STYLE_SETS[style_set]


def family_for_seed(seed: int, style_set: str = "classic") -> str:
    families = style_set_families(style_set)
    return families[seed % len(families)]


def sample_style(seed: int, family: str | None = None, style_set: str = "classic") -> StyleParams:
    """Draw a style deterministically from ``seed`` (family from the seed and its style set
    unless given)."""
    family = family_for_seed(seed, style_set) if family is None else family
    if family not in ALL_FAMILIES:
        raise UserError(
            f"unknown hair style family {family!r}; choose from {', '.join(ALL_FAMILIES)}"
        )
    rng = np.random.default_rng([seed, list(ALL_FAMILIES).index(family)])
    spec = {**_BASE, **ALL_FAMILIES[family]}
    values: dict[str, Any] = {}
    for name in (f.name for f in fields(StyleParams) if f.name not in ("family", "seed")):
        rule = spec[name]
        value = float(rng.uniform(*rule)) if isinstance(rule, tuple) else float(rule)
        values[name] = value
    values["clump_count"] = round(values["clump_count"])
    if spec["part_offset"] is _SIDE_PART:
        values["part_offset"] *= float(rng.choice([-1.0, 1.0]))
    return StyleParams(family=family, seed=int(seed), **values)
