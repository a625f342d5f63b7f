"""Extras for strand files: a head mesh to load beside a groom, and smooth resampling of strands.

- :func:`write_head_mesh` writes the skull ellipsoid and neck cylinder of a :class:`Head` as a
  triangle mesh (.obj or .ply, by suffix) in the strands' frame and up-axis convention, so a
  groom and its head line up when both files are imported into the same scene.
- :func:`resample_strands` gives strands any number of points, evenly spaced along a cubic spline
  through the original points (root and tip kept), for tools that want more than the
  generator's points per strand.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from difforge.core.errors import UserError
from difforge.core.io import atomic_path
from difforge.hair.data.head import DEFAULT_HEAD, Head
from difforge.hair.export import _oriented

NECK_BOTTOM = -0.20  # m: where the head mesh's neck cylinder ends (the model's neck is endless)
HEAD_MESH_SUFFIXES = (".obj", ".ply")


def head_mesh(
    head: Head = DEFAULT_HEAD, *, up_axis: str = "y", sections: int = 64, rings: int = 24
):
    """The head as one closed ``trimesh.Trimesh`` (watertight, no self-intersection): the skull
    ellipsoid down to the curve where the neck cylinder meets it, then the neck straight down to
    a flat cap at :data:`NECK_BOTTOM`. Every skull vertex lies on the ellipsoid and every neck
    vertex on the cylinder, so the crease is exact. ``sections`` columns run around the neck axis;
    ``rings`` rows cover the upper half of the skull, half as many its lower half
    (about 3 * rings * sections faces)."""
    import trimesh  # imported here: only head-mesh export needs it

    radii = head.radii_array
    # Columns: rays from the neck axis at angles alpha in the horizontal plane. Each column meets
    # the neck's circle, the skull's equator (a ray-ellipse intersection) and goes over the top.
    alpha = np.linspace(0.0, 2.0 * np.pi, sections, endpoint=False)
    sin_a, cos_a = np.sin(alpha), np.cos(alpha)
    neck_x, neck_z = head.neck_radius * sin_a, head.neck_z + head.neck_radius * cos_a
    level = (neck_x / radii[0]) ** 2 + (neck_z / radii[2]) ** 2
    if level.max() >= 1.0:
        raise UserError("the neck is wider than the skull; cannot join them into one mesh")
    a = (sin_a / radii[0]) ** 2 + (cos_a / radii[2]) ** 2
    b = 2.0 * head.neck_z * cos_a / radii[2] ** 2
    c = (head.neck_z / radii[2]) ** 2 - 1.0
    reach = (-b + np.sqrt(b * b - 4.0 * a * c)) / (2.0 * a)
    equator = np.stack([reach * sin_a, np.zeros(sections), head.neck_z + reach * cos_a], axis=-1)
    junction = np.stack([neck_x, -radii[1] * np.sqrt(1.0 - level), neck_z], axis=-1)
    _, phi_equator = head.angles(equator)
    theta_junction, phi_junction = head.angles(junction)
    # Upper skull: parametric rings from the crown to the equator; lower skull: from the equator to
    # the junction, interpolating each column's parametric angles (all points on the ellipsoid).
    theta_up = (np.pi / 2) * np.arange(1, rings + 1) / rings
    upper, _ = head.scalp_points(*np.broadcast_arrays(theta_up[:, None], phi_equator[None, :]))
    steps = np.arange(1, rings // 2 + 1)[:, None] / (rings // 2)
    turn = np.angle(np.exp(1j * (phi_junction - phi_equator)))  # wrapped to (-pi, pi]
    lower, _ = head.scalp_points(
        *np.broadcast_arrays(
            np.pi / 2 + steps * (theta_junction - np.pi / 2), phi_equator + steps * turn
        )
    )
    lower[-1] = junction  # exactly on the cylinder too
    bottom = np.stack([neck_x, np.full(sections, NECK_BOTTOM), neck_z], axis=-1)
    grid = np.concatenate([upper, lower, bottom[None]])  # (R, sections, 3), crown to neck
    top_pole, bottom_pole = [0.0, radii[1], 0.0], [0.0, NECK_BOTTOM, head.neck_z]
    vertices = np.concatenate([[top_pole], grid.reshape(-1, 3), [bottom_pole]])
    n_rings, column = len(grid), np.arange(sections)
    following = (column + 1) % sections
    faces = [np.stack([np.zeros(sections, int), 1 + following, 1 + column], axis=-1)]
    for ring in range(n_rings - 1):
        here, below = 1 + ring * sections, 1 + (ring + 1) * sections
        faces.append(np.stack([here + column, here + following, below + column], axis=-1))
        faces.append(np.stack([here + following, below + following, below + column], axis=-1))
    last, centre = 1 + (n_rings - 1) * sections, len(vertices) - 1
    faces.append(np.stack([np.full(sections, centre), last + column, last + following], axis=-1))
    vertices = _oriented(vertices[None], up_axis)[0].astype(np.float64)
    mesh = trimesh.Trimesh(vertices=vertices, faces=np.concatenate(faces), process=False)
    if mesh.volume < 0:  # wound inward: turn the faces over
        mesh.invert()
    return mesh


def write_head_mesh(
    path: str | os.PathLike[str],
    head: Head = DEFAULT_HEAD,
    up_axis: str = "y",
    suffix: str | None = None,
) -> Path:
    """Write :func:`head_mesh` (metres, the strands' ``up_axis``) as .obj or .ply by the suffix
    (PLY binary), atomically. ``suffix`` overrides the path's (for temporary names). Returns the
    path."""
    path = Path(path)
    suffix = (suffix or path.suffix).lower()
    if suffix not in HEAD_MESH_SUFFIXES:
        raise UserError(f"{path}: head mesh must end in .obj or .ply")
    mesh = head_mesh(head, up_axis=up_axis)
    with atomic_path(path) as tmp:
        mesh.export(tmp, file_type=suffix[1:])
    return path


def resample_strands(points: np.ndarray, n_points: int, *, oversample: int = 16) -> np.ndarray:
    """Strands (N, K, 3) resampled to (N, ``n_points``, 3) float32, evenly spaced by arc length.

    Each strand is interpolated by a cubic spline through its K points (parameterised by point
    index, not-a-knot ends, so even-spaced input such as the generator's gives a smooth C2 curve),
    measured on ``oversample`` samples per segment, and sampled at ``n_points`` equal lengths: the
    root stays first and the tip last, exactly. More points than K follow the curve between the
    original points rather than its straight segments; fewer cut corners as any polyline does.
    """
    points = np.asarray(points)
    if points.ndim != 3 or points.shape[-1] != 3 or points.shape[1] < 2:
        raise UserError(f"strands must have shape (N, K>=2, 3), got {points.shape}")
    if int(n_points) != n_points or n_points < 2:
        raise UserError(f"points per strand must be an integer >= 2, got {n_points}")
    n_points, oversample = int(n_points), max(int(oversample), 1)
    # Chunks of 4096 strands bound the memory of the dense samples (~100 MB each at K = 64).
    chunks = [
        _resample_chunk(points[start : start + 4096].astype(np.float64), n_points, oversample)
        for start in range(0, len(points), 4096)
    ]
    return np.concatenate(chunks) if chunks else np.zeros((0, n_points, 3), dtype=np.float32)


def _resample_chunk(data: np.ndarray, n_points: int, oversample: int) -> np.ndarray:
    from scipy.interpolate import CubicSpline

    n_strands, n_in = data.shape[:2]
    # One spline for all strands: the knots (point indices) are shared, the values are columns.
    spline = CubicSpline(np.arange(n_in), data.transpose(1, 0, 2).reshape(n_in, -1), axis=0)
    dense_t = np.linspace(0.0, n_in - 1, (n_in - 1) * oversample + 1)
    dense = spline(dense_t).reshape(len(dense_t), n_strands, 3).transpose(1, 0, 2)
    lengths = np.concatenate(
        [
            np.zeros((n_strands, 1)),
            np.cumsum(np.linalg.norm(np.diff(dense, axis=1), axis=-1), axis=1),
        ],
        axis=1,
    )
    total = lengths[:, -1:]
    fraction = lengths / np.where(total > 0, total, 1.0)  # (N, M) in [0, 1], non-decreasing
    targets = np.linspace(0.0, 1.0, n_points)
    # Invert arc length -> parameter for every strand at once: offset each strand's fractions by
    # 2 * its index so one sorted array holds them all.
    offset = 2.0 * np.arange(n_strands)[:, None]
    flat = (fraction + offset).reshape(-1)
    wanted = (targets[None, :] + offset).reshape(-1)
    right = np.searchsorted(flat, wanted, side="left").reshape(n_strands, n_points)
    row_start = (np.arange(n_strands) * len(dense_t))[:, None]
    right = np.clip(right - row_start, 1, len(dense_t) - 1)
    left = right - 1
    f_left = np.take_along_axis(fraction, left, axis=1)
    f_right = np.take_along_axis(fraction, right, axis=1)
    weight = np.clip(
        (targets[None, :] - f_left) / np.where(f_right > f_left, f_right - f_left, 1.0), 0.0, 1.0
    )
    t = dense_t[left] + weight * (dense_t[right] - dense_t[left])  # (N, n_points) parameters
    # Evaluate each strand's own spline at its own parameters from the piecewise coefficients.
    segment = np.clip(np.floor(t).astype(np.int64), 0, n_in - 2)
    local = (t - segment)[..., None]
    coefficients = spline.c.reshape(4, n_in - 1, n_strands, 3)  # highest power first
    strand = np.arange(n_strands)[:, None]
    out = coefficients[0][segment, strand]
    for power in range(1, 4):
        out = out * local + coefficients[power][segment, strand]
    out[:, 0], out[:, -1] = data[:, 0], data[:, -1]
    return out.astype(np.float32)
