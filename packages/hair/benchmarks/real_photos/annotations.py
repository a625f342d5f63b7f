"""Load the hand-made annotations of the real portrait set.

Annotations live in ``annotations/<name>/`` next to this file and are in the
pixel coordinates of ``<cache>/<name>.png`` written by ``collect.py`` (x to the
right, y down the rows):

* ``hair_mask.png``: uint8 0/255, hair pixels only;
* ``strands.json``: ``{"strokes": [[[x, y], ...], ...]}``, polylines drawn
  along visible strands/locks, from the root side toward the tip;
* ``face.json``: ``{"face_box": [left, top, right, bottom]}``;
* ``depth_pairs.json``: ``{"pairs": [{"a": [x, y], "b": [x, y], "closer": "a"}, ...]}``,
  ordinal depth pairs of hair pixels for HairStep's HairRida metric.

``orientation_from_strokes`` turns the strokes into the dense strand map that
HairStep compares rendered strand directions with (HairSale): every mask
pixel takes the direction of the nearest stroke segment.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.spatial import cKDTree

ROOT = Path(__file__).resolve().parent / "annotations"


def names(root: str | Path = ROOT) -> list[str]:
    """Names of the annotated photos."""
    return sorted(p.name for p in Path(root).iterdir() if (p / "hair_mask.png").is_file())


def load_annotation(name: str, root: str | Path = ROOT) -> dict:
    """Return ``dict(hair_mask=(H, W) bool, strokes=[(M, 2) float], face_box=[l, t, r, b])``."""
    d = Path(root) / name
    mask = np.asarray(Image.open(d / "hair_mask.png").convert("L")) > 127
    strokes = [
        np.asarray(s, dtype=np.float64).reshape(-1, 2)
        for s in json.loads((d / "strands.json").read_text())["strokes"]
    ]
    face_box = [int(v) for v in json.loads((d / "face.json").read_text())["face_box"]]
    return {"hair_mask": mask, "strokes": strokes, "face_box": face_box}


def _sample_strokes(
    strokes: list[np.ndarray], step: float = 0.5, directed: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Densely sampled stroke points (K, 2) and the image angle of their segment (K,).

    The angle is measured with the y axis pointing up (rows grow downward):
    in [0, pi) when undirected, in [0, 2 pi) (root to tip) when ``directed``.
    """
    period = 2 * np.pi if directed else np.pi
    pts, ang = [], []
    for s in strokes:
        s = np.asarray(s, dtype=np.float64).reshape(-1, 2)
        for a, b in itertools.pairwise(s):
            seg = b - a
            length = float(np.hypot(*seg))
            if length < 1e-9:
                continue
            n = max(2, int(np.ceil(length / step)) + 1)
            pts.append(a + np.linspace(0.0, 1.0, n)[:, None] * seg)
            ang.append(np.full(n, np.mod(np.arctan2(-seg[1], seg[0]), period)))
    if not pts:
        return np.zeros((0, 2)), np.zeros(0)
    return np.concatenate(pts), np.concatenate(ang)


def _nearest_stroke_field(
    strokes: list[np.ndarray], mask: np.ndarray, directed: bool
) -> np.ndarray:
    mask = np.asarray(mask, dtype=bool)
    out = np.full(mask.shape, np.nan, dtype=np.float32)
    pts, ang = _sample_strokes(strokes, directed=directed)
    if len(pts) == 0 or not mask.any():
        return out
    ys, xs = np.nonzero(mask)
    _, idx = cKDTree(pts).query(np.column_stack([xs, ys]).astype(np.float64))
    out[ys, xs] = ang[idx].astype(np.float32)
    return out


def orientation_from_strokes(strokes: list[np.ndarray], mask: np.ndarray) -> np.ndarray:
    """Dense undirected strand orientation inside ``mask``.

    Each mask pixel takes the direction of the nearest stroke segment (cKDTree
    on stroke points sampled every 0.5 px). Returns an (H, W) float32 array of
    angles in [0, pi): 0 = image right, pi/2 = image up (the y axis is flipped
    relative to rows). Pixels outside the mask (all pixels, when there are no
    strokes) are NaN.
    """
    return _nearest_stroke_field(strokes, mask, directed=False)


def direction_from_strokes(strokes: list[np.ndarray], mask: np.ndarray) -> np.ndarray:
    """Like :func:`orientation_from_strokes` but directed (root to tip), in [0, 2 pi)."""
    return _nearest_stroke_field(strokes, mask, directed=True)


def load_depth_pairs(
    name: str, root: str | Path = ROOT
) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """Ordinal depth pairs ``(a, b, label)`` of ``annotations/<name>/depth_pairs.json``.

    ``a`` and ``b`` are (2,) float arrays of pixel coordinates ``(x, y)`` (both
    inside the hair mask); ``label`` is +1 when ``a`` is closer to the camera
    and -1 when ``b`` is. A photo without the file has no pairs (empty list).
    """
    path = Path(root) / name / "depth_pairs.json"
    if not path.is_file():
        return []
    out = []
    for p in json.loads(path.read_text())["pairs"]:
        if p["closer"] not in ("a", "b"):
            raise ValueError(f"{path}: closer must be 'a' or 'b', got {p['closer']!r}")
        a = np.asarray(p["a"], dtype=np.float64).reshape(2)
        b = np.asarray(p["b"], dtype=np.float64).reshape(2)
        out.append((a, b, 1 if p["closer"] == "a" else -1))
    return out
