"""Procedural grooms: guide strands grown on the scalp, interpolated to dense strands, then styled.

Pipeline (the order Blender's hair nodes use): density map -> roots -> guides grown from a comb field
with gravity, stiffness and head collision -> dense strands interpolated from the 3 nearest guides
of the same parting/fringe group, each turned onto the root's normal -> clumping -> curls (helix) and waves in a
rotation-minimising frame -> frizz -> collision -> length cuts -> resampling by arc length.
Everything is vectorised over strands; only the growth of ~100 guides and the frame transport
step along the strand.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from difforge.core.errors import UserError
from difforge.hair.data.head import (
    DEFAULT_HEAD,
    UV_MAX_THETA,
    Head,
    angles_from_uv,
    cross,
    uv_from_angles,
)
from difforge.hair.data.styles import StyleParams

GUIDE_COUNT = 160
ROOT_SHAPE_LENGTH = 0.03  # arc (m) over which a strand's shape is relative to the scalp
# Segments of the internal centreline before the final resampling: 48 follow gravity and the
# head smoothly; curls get up to 8 segments per turn.
MIN_GROWTH_STEPS, MAX_GROWTH_STEPS = 48, 128
COLLISION_MARGIN = 0.0015  # hair rests this far (m) outside the skin
HUG_HEIGHT_PER_LIFT = 0.1  # rest height over the scalp of hugging strands, per unit of lift
SIDE_BAND = 0.035  # |x| (m) beyond which a point is on the side of the head (mohawk, undercut)
_CROWN = (0.4, np.pi)  # (theta, phi) of the hair whorl, a little behind the top


@dataclass(frozen=True)
class Groom:
    """Strands as ``points`` (N, K, 3) float32 metres in the head frame, root first, and the
    roots' scalp UVs ``root_uv`` (N, 2) float32 in [0, 1]^2."""

    points: np.ndarray
    root_uv: np.ndarray

    @property
    def n_strands(self) -> int:
        return int(self.points.shape[0])

    @property
    def n_points(self) -> int:
        return int(self.points.shape[1])

    def root_frames(self, head: Head = DEFAULT_HEAD) -> np.ndarray:
        """Root-local (tangent, bitangent, normal) frames ``(N, 3, 3)``, columns, from the UVs."""
        return head.frames(*angles_from_uv(self.root_uv.astype(np.float64)))


def hairline_theta(style: StyleParams, phi: np.ndarray) -> np.ndarray:
    """Polar angle of the hairline at azimuth ``phi``: forehead ~62 deg, sides ~97, nape ~118."""
    cos_phi = np.cos(phi)
    front, side, back = np.deg2rad(62.0) + style.hairline, np.deg2rad(97.0), np.deg2rad(118.0)
    theta = (
        np.maximum(cos_phi, 0.0) ** 2 * front
        + np.sin(phi) ** 2 * side
        + np.maximum(-cos_phi, 0.0) ** 2 * back
    )
    temples = np.exp(-(((np.abs(phi) - 0.6) / 0.28) ** 2))  # M-shaped recession at +-34 deg
    return theta - style.recession * temples


def density_at(
    style: StyleParams, theta: np.ndarray, phi: np.ndarray, head: Head = DEFAULT_HEAD
) -> np.ndarray:
    """Hair density in [0, 1] on the scalp; exactly 0 off the scalp (and below 0.02, as DiffLocks)."""
    theta, phi = np.asarray(theta, dtype=np.float64), np.asarray(phi, dtype=np.float64)
    points, _ = head.scalp_points(theta, phi)
    hairline = np.clip((hairline_theta(style, phi) - theta) / 0.06 + 0.5, 0.0, 1.0)
    density = style.density * hairline
    if style.thinning > 0:
        crown_dir, _ = head.scalp_points(np.array(_CROWN[0]), np.array(_CROWN[1]))
        unit = points / head.radii_array
        crown_unit = crown_dir / head.radii_array
        angle = np.arccos(
            np.clip(np.sum(unit * crown_unit, -1) / np.linalg.norm(unit, axis=-1), -1, 1)
        )
        phases = np.random.default_rng([style.seed, 7]).uniform(0, 2 * np.pi, size=3)
        patchy = 0.8 + 0.2 * (
            np.sin(7 * theta + phases[0])
            + np.sin(5 * phi + phases[1]) * np.sin(9 * theta + phases[2])
        )
        density *= np.clip(
            1.0 - 1.3 * style.thinning * np.exp(-((angle / 0.55) ** 2)) * patchy, 0.0, 1.0
        )
    if style.part_strength > 0:
        front_top = (points[..., 2] > -0.02) & (theta < np.deg2rad(85.0))
        gap = np.clip(np.abs(points[..., 0] - style.part_offset) / 0.0025, 0.0, 1.0)
        density *= np.where(front_top, gap, 1.0)
    side = _side_weight(points)
    density *= 1.0 - side + side * style.side_density
    density = np.where(theta > UV_MAX_THETA, 0.0, density)
    return np.where(density < 0.02, 0.0, density)


def density_map(style: StyleParams, resolution: int = 128, head: Head = DEFAULT_HEAD) -> np.ndarray:
    """The density map as a (resolution, resolution) float32 image: rows are v, columns are u."""
    centres = (np.arange(resolution) + 0.5) / resolution
    uv = np.stack(np.meshgrid(centres, centres, indexing="xy"), axis=-1)
    return density_at(style, *angles_from_uv(uv), head=head).astype(np.float32)


def generate_groom(
    style: StyleParams, n_strands: int = 10_000, n_points: int = 64, head: Head = DEFAULT_HEAD
) -> Groom:
    """Grow the groom of ``style``: deterministic for a given style (its seed fixes every draw).

    ``n_strands`` root candidates are spread uniformly over the UV disk's cap and kept with
    probability equal to the density map, so a full-density style keeps about 60-70 % of them and a
    mohawk far fewer. Strands are resampled to ``n_points`` points evenly spaced in arc length.
    """
    if n_strands < 1 or n_points < 2:
        raise UserError(
            f"a groom needs at least 1 strand and 2 points per strand (got {n_strands}, {n_points})"
        )
    rng = np.random.default_rng([style.seed, 1])
    theta, phi = _uniform_cap(rng, n_strands)
    keep = rng.random(n_strands) < density_at(style, theta, phi, head)
    if not keep.any():  # keep the densest candidate so every style has a groom
        keep[np.argmax(density_at(style, theta, phi, head))] = True
    theta, phi = theta[keep], phi[keep]
    roots, normals = head.scalp_points(theta, phi)
    frames = head.frames(theta, phi)

    guide_theta, guide_phi = _fibonacci_cap(GUIDE_COUNT, rng.uniform(0, 2 * np.pi))
    guide_roots, guide_normals = head.scalp_points(guide_theta, guide_phi)
    max_length = style.length * (1.0 + style.length_jitter)
    guides = _grow_guides(
        style, guide_theta, guide_phi, guide_roots, guide_normals, max_length, rng, head
    )

    strand_lengths = style.length * (
        1.0 + style.length_jitter * rng.uniform(-1, 1, size=len(roots))
    )
    strand_lengths *= 1.0 - _side_weight(roots) * (1.0 - style.side_length)
    group_roots = _grouped(style, roots, theta, phi)
    guide_groups = _grouped(style, guide_roots, guide_theta, guide_phi)
    guide_step = max_length / (guides.shape[1] - 1)
    guide_directions = np.diff(guides, axis=1) / guide_step
    directions = _interpolate(
        group_roots, normals, guide_groups, guide_normals, guide_directions, guide_step
    )
    directions = _truncate(directions, np.clip(strand_lengths / max_length, 1e-3, 1.0))
    centre = _integrate(roots, directions, strand_lengths, head, style.hug, _hug_height(style))

    clump_of = _assign_clumps(style, group_roots, rng)
    if clump_of is not None and style.clump_strength > 0:
        centre = _clump(centre, clump_of, strand_lengths, style.clump_strength)
    points = _add_curls_waves_frizz(style, centre, frames, strand_lengths, clump_of, rng)
    points[:, 1:] = head.push_outside(points[:, 1:], COLLISION_MARGIN)
    points = _cut_and_resample(style, points, group_roots[:, 3] >= 2, n_points, rng)
    points[:, 1:] = head.push_outside(points[:, 1:], COLLISION_MARGIN / 2)
    points[:, 0] = roots
    return Groom(
        points=points.astype(np.float32), root_uv=uv_from_angles(theta, phi).astype(np.float32)
    )


def _uniform_cap(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    cos_theta = rng.uniform(np.cos(UV_MAX_THETA), 1.0, size=count)
    return np.arccos(cos_theta), rng.uniform(-np.pi, np.pi, size=count)


def _fibonacci_cap(count: int, rotation: float) -> tuple[np.ndarray, np.ndarray]:
    # Evenly spread guides (the golden-angle spiral), rotated per style so guides differ by seed.
    index = np.arange(count) + 0.5
    cos_theta = 1.0 - index / count * (1.0 - np.cos(UV_MAX_THETA))
    phi = np.mod(index * np.pi * (3.0 - np.sqrt(5.0)) + rotation, 2 * np.pi) - np.pi
    return np.arccos(cos_theta), phi


def _side_weight(points: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(np.abs(points[..., 0]) - SIDE_BAND) / 0.004))


def _grouped(
    style: StyleParams, points: np.ndarray, theta: np.ndarray, phi: np.ndarray
) -> np.ndarray:
    """Root positions with a 4th coordinate that separates interpolation groups by a metre.

    Strands only blend guides of their own group, so a parting stays a clean line and a fringe
    does not average with the hair behind it (Blender's "Interpolate Hair Curves" by group).
    """
    group = np.zeros(len(points))
    if style.part_strength > 0:
        front_top = (points[:, 2] > -0.02) & (theta < np.deg2rad(85.0))
        group = np.where(front_top, np.where(points[:, 0] > style.part_offset, 1.0, -1.0), 0.0)
    group += 3.0 * _in_fringe(style, theta, phi)
    return np.concatenate([points, group[:, None]], axis=1)


def _in_fringe(style: StyleParams, theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    if style.bangs <= 0:
        return np.zeros(theta.shape, dtype=bool)
    front_line = hairline_theta(style, np.zeros_like(phi))
    return (np.abs(phi) < 0.85) & (theta > front_line - style.bangs) & (theta < front_line + 0.2)


def _comb_directions(
    style: StyleParams,
    theta: np.ndarray,
    phi: np.ndarray,
    points: np.ndarray,
    normals: np.ndarray,
    rng: np.random.Generator,
    head: Head,
) -> np.ndarray:
    """Unit tangent directions the hair is combed in at each root."""
    crown_point, _ = head.scalp_points(np.array(_CROWN[0]), np.array(_CROWN[1]))
    away_from_crown = points - crown_point
    away_from_crown /= np.linalg.norm(away_from_crown, axis=-1, keepdims=True) + 1e-9
    comb = away_from_crown.copy()
    if style.part_strength > 0:
        # Away from the parting, fading with distance from it and toward the back of the head.
        front = np.clip((points[:, 2] + 0.04) / 0.06, 0.0, 1.0)
        near = np.exp(-np.abs(points[:, 0] - style.part_offset) / 0.03)
        side = np.where(points[:, 0] > style.part_offset, 1.0, -1.0)
        comb[:, 0] += 2.5 * style.part_strength * front * near * side
    comb += 2.0 * style.comb_back * np.array([0.0, 0.0, -1.0])
    fringe = _in_fringe(style, theta, phi)
    comb[fringe] = np.array([0.0, -0.3, 1.0])
    comb += 0.25 * rng.normal(size=comb.shape)  # guides are never perfectly parallel
    comb -= np.sum(comb * normals, axis=-1, keepdims=True) * normals
    return comb / (np.linalg.norm(comb, axis=-1, keepdims=True) + 1e-9)


def _grow_guides(
    style: StyleParams,
    theta: np.ndarray,
    phi: np.ndarray,
    roots: np.ndarray,
    normals: np.ndarray,
    length: float,
    rng: np.random.Generator,
    head: Head,
) -> np.ndarray:
    """Guides (G, steps + 1, 3): each step bends toward gravity once past the stiff root section,
    then is pushed out of the head and re-aimed along the pushed segment."""
    comb = _comb_directions(style, theta, phi, roots, normals, rng, head)
    lift = max(style.lift, 0.05)  # every strand leaves the scalp outward
    direction = lift * normals + (1.0 - lift) * comb
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    turns = style.curl_frequency * length if style.curl_radius > 0 else 0.0
    steps = int(np.clip(8 * turns, MIN_GROWTH_STEPS, MAX_GROWTH_STEPS))
    step = length / steps
    down = np.array([0.0, -1.0, 0.0])
    path = np.empty((len(roots), steps + 1, 3))
    path[:, 0] = roots
    for k in range(1, steps + 1):
        arc = (k - 0.5) * step
        bend = style.gravity * min(1.0, arc / max(style.stiffness, 1e-6)) * step
        direction = direction + bend * down
        direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
        direction = _hug_scalp(direction, path[:, k - 1], style.hug, _hug_height(style), head)
        moved = head.push_outside(path[:, k - 1] + direction * step, COLLISION_MARGIN)
        direction = moved - path[:, k - 1]
        direction /= np.linalg.norm(direction, axis=-1, keepdims=True) + 1e-12
        path[:, k] = moved
    return path


def _interpolate(
    roots: np.ndarray,
    normals: np.ndarray,
    guide_roots: np.ndarray,
    guide_normals: np.ndarray,
    guide_directions: np.ndarray,
    step_length: float,
    k: int = 3,
) -> np.ndarray:
    """Unit segment directions (N, S, 3) blended from the k nearest same-group guides.

    Each guide's directions are turned by the smallest rotation that takes its root normal onto
    the strand's (so hair lying along the scalp keeps lying along it), fading out over the first
    few centimetres, averaged with inverse-square
    distance weights and renormalised. Blending directions rather than positions matters near the
    whorl, where neighbouring guides fall different ways: averaged positions would give a short
    strand cutting through the head and then slanting off sideways, averaged directions still
    follow gravity once the guides all hang down.
    """
    distance, index = cKDTree(guide_roots).query(roots, k=k)
    weights = 1.0 / (distance**2 + 1e-8)
    weights /= weights.sum(axis=1, keepdims=True)
    source = guide_normals[index]  # (N, k, 3)
    target = np.broadcast_to(normals[:, None], source.shape)
    axis = cross(source, target)
    sine = np.linalg.norm(axis, axis=-1)
    axis /= np.maximum(sine, 1e-12)[..., None]
    angle = np.arctan2(sine, np.sum(source * target, axis=-1))
    # The turn fades out along the strand: near the root the shape is relative to the scalp, the
    # hanging part is shaped by gravity in world space and must keep hanging.
    arc = (np.arange(guide_directions.shape[1]) + 0.5) * step_length
    angle = angle[..., None] * np.exp(-arc / ROOT_SHAPE_LENGTH)  # (N, k, S)
    # Rodrigues, R v = v + sin(a) K v + (1 - cos(a)) K^2 v with K the axis' cross-product matrix,
    # summed over the k guides with their weights folded into the coefficients.
    skew = np.zeros((*axis.shape, 3))
    skew[..., 0, 1], skew[..., 0, 2], skew[..., 1, 2] = -axis[..., 2], axis[..., 1], -axis[..., 0]
    skew -= np.swapaxes(skew, -1, -2)
    v = guide_directions[index]  # (N, k, S, 3)
    w = weights[..., None]
    blended = (
        np.einsum("nk,nksc->nsc", weights, v)
        + np.einsum("nks,nkij,nksj->nsi", w * np.sin(angle), skew, v, optimize=True)
        + np.einsum("nks,nkij,nksj->nsi", w * (1.0 - np.cos(angle)), skew @ skew, v, optimize=True)
    )
    return blended / (np.linalg.norm(blended, axis=-1, keepdims=True) + 1e-12)


def _integrate(
    roots: np.ndarray,
    directions: np.ndarray,
    lengths: np.ndarray,
    head: Head,
    hug: float = 0.0,
    hug_height: float = 0.0,
) -> np.ndarray:
    """Walk each strand from its root along its directions, sliding over the head on contact
    (and, with ``hug``, kept along the scalp as the guides were)."""
    step = (lengths / directions.shape[1])[:, None]
    path = np.empty((len(roots), directions.shape[1] + 1, 3))
    path[:, 0] = roots
    for k in range(directions.shape[1]):
        direction = _hug_scalp(directions[:, k], path[:, k], hug, hug_height, head)
        path[:, k + 1] = head.push_outside(path[:, k] + direction * step, COLLISION_MARGIN)
    return path


def _hug_height(style: StyleParams) -> float:
    """Height (m) over the scalp that hugging strands settle at: the layers of lying hair give
    short cuts 1-3 cm of volume, more where the roots stand up more (``lift``)."""
    return HUG_HEIGHT_PER_LIFT * style.lift


def _hug_scalp(
    direction: np.ndarray, position: np.ndarray, hug: float, rest_height: float, head: Head
) -> np.ndarray:
    """``direction`` with up to ``hug`` of its part leading away from the skull removed (none
    at the scalp, all from ``rest_height`` above it), so a strand rises to that height and then
    bends with the scalp's curve instead of leaving it along a tangent: short hair that lies on
    the head (a straight 10 cm tangent off the crown would end 5 cm above the scalp)."""
    if hug <= 0:
        return direction
    _, normal = head.scalp_points(*head.angles(position))
    level = head.skull_level(position)[:, None]
    height = np.linalg.norm(position, axis=-1, keepdims=True) * (1.0 - 1.0 / level)
    weight = hug * np.clip(height / max(rest_height, 1e-6), 0.0, 1.0)
    outward = np.maximum(np.sum(direction * normal, axis=-1, keepdims=True), 0.0)
    direction = direction - weight * outward * normal
    return direction / (np.linalg.norm(direction, axis=-1, keepdims=True) + 1e-12)


def _truncate(directions: np.ndarray, fraction: np.ndarray) -> np.ndarray:
    """The directions along the first ``fraction`` of each strand, resampled to the same count."""
    last = directions.shape[1] - 1
    position = (np.arange(last + 1) + 0.5)[None, :] * fraction[:, None] - 0.5
    lower = np.clip(np.floor(position).astype(np.int64), 0, last - 1)
    weight = np.clip(position - lower, 0.0, 1.0)[..., None]
    rows = np.arange(len(directions))[:, None]
    blended = (1.0 - weight) * directions[rows, lower] + weight * directions[rows, lower + 1]
    return blended / (np.linalg.norm(blended, axis=-1, keepdims=True) + 1e-12)


def _assign_clumps(
    style: StyleParams, grouped_roots: np.ndarray, rng: np.random.Generator
) -> np.ndarray | None:
    """Index of each strand's clump-centre strand (nearest of ``clump_count`` random strands)."""
    count = min(style.clump_count, len(grouped_roots))
    if count < 1:
        return None
    centres = rng.choice(len(grouped_roots), size=count, replace=False)
    _, nearest = cKDTree(grouped_roots[centres]).query(grouped_roots)
    return centres[nearest]


def _clump(
    centre: np.ndarray, clump_of: np.ndarray, lengths: np.ndarray, strength: float
) -> np.ndarray:
    """Pull each strand toward its clump's centre strand at the same arc length, harder toward the
    tip (strength * t^1.5) and only as much as the two lengths agree (short side hair is not
    dragged along the long hair above it)."""
    steps = centre.shape[1] - 1
    ratio = lengths / lengths[clump_of]
    position = np.minimum(np.arange(steps + 1)[None, :] * ratio[:, None], steps)
    lower = np.minimum(np.floor(position).astype(np.int64), steps - 1)
    weight = (position - lower)[..., None]
    owner = clump_of[:, None]
    target = (1.0 - weight) * centre[owner, lower] + weight * centre[owner, lower + 1]
    similarity = np.minimum(ratio, 1.0 / ratio)[:, None, None]
    pull = strength * similarity * np.linspace(0.0, 1.0, steps + 1)[None, :, None] ** 1.5
    return centre + pull * (target - centre)


def _rotation_minimising_normals(
    centre: np.ndarray, start_reference: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Tangents and normals along each centreline by the double-reflection method (Wang et al.
    2008): the curl phase then follows the strand without twisting."""
    # Step-major (K, N, 3) copies keep every slice of the sequential loop contiguous.
    segment = np.ascontiguousarray(np.diff(centre, axis=1).transpose(1, 0, 2))
    tangent = np.concatenate([segment, segment[-1:]], axis=0)
    tangent[1:-1] = segment[:-1] + segment[1:]
    tangent /= np.sqrt(_dot(tangent, tangent)) + 1e-12
    normal = np.empty_like(tangent)
    ref = start_reference - _dot(start_reference, tangent[0]) * tangent[0]
    normal[0] = ref / (np.sqrt(_dot(ref, ref)) + 1e-12)
    for k in range(len(segment)):
        v1 = segment[k]
        c1 = np.maximum(_dot(v1, v1), 1e-18)
        r_left = normal[k] - (2.0 / c1) * _dot(v1, normal[k]) * v1
        t_left = tangent[k] - (2.0 / c1) * _dot(v1, tangent[k]) * v1
        v2 = tangent[k + 1] - t_left
        c2 = _dot(v2, v2)
        following = r_left - (2.0 / np.maximum(c2, 1e-18)) * _dot(v2, r_left) * v2
        following = np.where(c2 > 1e-18, following, r_left)
        normal[k + 1] = following / (np.sqrt(_dot(following, following)) + 1e-12)
    return tangent.transpose(1, 0, 2), normal.transpose(1, 0, 2)


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("...i,...i->...", a, b)[..., None]


def _add_curls_waves_frizz(
    style: StyleParams,
    centre: np.ndarray,
    frames: np.ndarray,
    lengths: np.ndarray,
    clump_of: np.ndarray | None,
    rng: np.random.Generator,
) -> np.ndarray:
    n_strands = len(centre)
    fraction = np.linspace(0.0, 1.0, centre.shape[1])[None, :]
    arc = fraction * lengths[:, None]  # centreline arc
    owner = np.arange(n_strands) if clump_of is None else clump_of
    # Curls and waves share a phase within a clump (ringlets), with a little per-strand spread.
    clump_phase = rng.uniform(0, 2 * np.pi, size=n_strands)[owner] + rng.normal(
        0, 0.3, size=n_strands
    )
    clump_scale = rng.uniform(0.9, 1.1, size=n_strands)[owner]
    points = centre.copy()
    if style.curl_radius > 0 or style.wave_amplitude > 0:
        tangent, normal = _rotation_minimising_normals(centre, frames[:, :, 0])
        binormal = cross(tangent, normal)
        ramp = np.clip((arc - style.curl_start * lengths[:, None]) / 0.01, 0.0, 1.0)[..., None]
        if style.curl_radius > 0:
            angle = (
                2 * np.pi * style.curl_frequency * clump_scale[:, None] * arc + clump_phase[:, None]
            )
            radius = style.curl_radius * rng.uniform(0.85, 1.15, size=n_strands)[:, None, None]
            points += (
                ramp
                * radius
                * (np.cos(angle)[..., None] * normal + np.sin(angle)[..., None] * binormal)
            )
        if style.wave_amplitude > 0:
            plane = rng.uniform(0, np.pi, size=n_strands)[owner][:, None, None]
            wave_axis = np.cos(plane) * normal + np.sin(plane) * binormal
            wave = np.sin(
                2 * np.pi * style.wave_frequency * clump_scale[:, None] * arc + clump_phase[:, None]
            )
            points += ramp * style.wave_amplitude * wave[..., None] * wave_axis
    if style.frizz > 0:
        frequency = rng.uniform(15.0, 45.0, size=(n_strands, 1, 3))
        phase = rng.uniform(0, 2 * np.pi, size=(n_strands, 1, 3))
        points += (
            style.frizz
            * (fraction**2)[..., None]
            * np.sin(2 * np.pi * frequency * arc[..., None] + phase)
        )
    if style.stray > 0:
        points += _stray_fibres(style.stray, fraction, arc, rng)
    return points


def _stray_fibres(
    share: float, fraction: np.ndarray, arc: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Offsets (N, K, 3) that send a ``share`` of the strands off their clump: a slow wander of
    1-3 cm at the tip in a random direction, as the loose fibres of frizzy hair stand out of
    its silhouette."""
    n_strands = len(arc)
    chosen = (rng.random(n_strands) < share)[:, None, None]
    heading = rng.normal(size=(n_strands, 1, 3))
    heading /= np.linalg.norm(heading, axis=-1, keepdims=True)
    amplitude = rng.uniform(0.01, 0.03, size=(n_strands, 1, 1))
    frequency = rng.uniform(3.0, 10.0, size=(n_strands, 1, 3))
    phase = rng.uniform(0, 2 * np.pi, size=(n_strands, 1, 3))
    wander = heading + 0.5 * np.sin(2 * np.pi * frequency * arc[..., None] + phase)
    return chosen * amplitude * (fraction**1.5)[..., None] * wander


def _cut_and_resample(
    style: StyleParams,
    points: np.ndarray,
    in_fringe: np.ndarray,
    n_points: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Cut strands where they first drop below the bob/fringe planes, then resample each strand to
    ``n_points`` points evenly spaced in arc length."""
    segment_length = np.linalg.norm(np.diff(points, axis=1), axis=-1)
    cumulative = np.concatenate(
        [np.zeros((len(points), 1)), np.cumsum(segment_length, axis=1)], axis=1
    )
    keep_length = cumulative[:, -1].copy()
    cut_heights = np.full(len(points), style.cut_y) + rng.normal(0, 0.003, size=len(points))
    cut_heights = np.where(in_fringe, np.maximum(cut_heights, style.fringe_y), cut_heights)
    y = points[..., 1]
    below = y[:, 1:] < cut_heights[:, None]
    crosses = below.any(axis=1)
    if crosses.any():
        rows = np.flatnonzero(crosses)
        k = np.argmax(below[rows], axis=1) + 1  # first point below the plane
        y_above, y_below = y[rows, k - 1], y[rows, k]
        part = np.clip(
            (y_above - cut_heights[rows]) / np.maximum(y_above - y_below, 1e-12), 0.0, 1.0
        )
        keep_length[rows] = cumulative[rows, k - 1] + part * segment_length[rows, k - 1]
    keep_length = np.maximum(keep_length, min(0.003, style.length))
    return resample_by_arc_length(points, n_points, keep_length, cumulative)


def resample_by_arc_length(
    points: np.ndarray,
    n_points: int,
    lengths: np.ndarray | None = None,
    cumulative: np.ndarray | None = None,
) -> np.ndarray:
    """Resample polylines (N, K, 3) to ``n_points`` points evenly spaced along their first
    ``lengths`` metres of arc (the whole strand when ``lengths`` is None)."""
    points = np.asarray(points, dtype=np.float64)
    n_strands, n_old = points.shape[:2]
    if cumulative is None:
        steps = np.linalg.norm(np.diff(points, axis=1), axis=-1)
        cumulative = np.concatenate([np.zeros((n_strands, 1)), np.cumsum(steps, axis=1)], axis=1)
    lengths = cumulative[:, -1] if lengths is None else np.minimum(lengths, cumulative[:, -1])
    targets = np.linspace(0.0, 1.0, n_points)[None, :] * lengths[:, None]
    # One searchsorted over all strands: offset each row so the rows stay sorted end to end.
    offset = (np.arange(n_strands) * (cumulative[:, -1].max() + 1.0))[:, None]
    flat_index = (
        np.searchsorted((cumulative + offset).ravel(), (targets + offset).ravel(), side="right") - 1
    )
    row_start = np.repeat(np.arange(n_strands) * n_old, n_points)
    flat_index = np.clip(flat_index, row_start, row_start + n_old - 2)
    flat_cum = cumulative.ravel()
    span = np.maximum(flat_cum[flat_index + 1] - flat_cum[flat_index], 1e-12)
    weight = np.clip((targets.ravel() - flat_cum[flat_index]) / span, 0.0, 1.0)[:, None]
    flat_points = points.reshape(-1, 3)
    result = (1.0 - weight) * flat_points[flat_index] + weight * flat_points[flat_index + 1]
    return result.reshape(n_strands, n_points, 3)
