"""CPU line rasteriser for grooms: shaded, orientation-aware, depth-tested against the head.

Written by hand because no maintained CPU library does this job: skimage.draw and PIL's ImageDraw
draw one line per call with no depth buffer or per-pixel attributes (a 10K-strand groom is ~600K
segments), and pyrender/moderngl/trimesh viewers need an OpenGL context that CI machines lack.
Here every segment is split into samples under a pixel apart, samples are depth-sorted per pixel
in one vectorised argsort (a z-buffer), the head is ray-cast analytically, and the image is
rendered at ``supersample``x resolution and box-filtered, so coverage gives soft strand edges.

Shading: Lambert skin; Kajiya-Kay hair (diffuse sqrt(1 - (t.l)^2), specular with the half vector)
using the strand tangent t, darkened near the skin and at the roots; the per-pixel 2D strand
orientation is returned alongside the picture (the orientation map hair papers use).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from difforge.core.io import atomic_path
from difforge.hair.data.head import DEFAULT_HEAD, Head
from difforge.hair.data.styles import StyleParams

CONDITIONING_SIZE = 128
_LIGHT = np.array([-0.35, 0.55, 0.75]) / np.linalg.norm([-0.35, 0.55, 0.75])  # camera space


@dataclass(frozen=True)
class Camera:
    """Orthographic camera orbiting the head: ``yaw`` degrees toward the subject's left (+x),
    ``pitch`` degrees up, the picture turned ``roll`` degrees counter-clockwise; the square
    image spans ``half_extent`` metres around ``center``."""

    yaw: float = 0.0
    pitch: float = 0.0
    center: tuple[float, float, float] = (0.0, -0.07, 0.0)
    half_extent: float = 0.24
    roll: float = 0.0

    def rotation(self) -> np.ndarray:
        """World-to-camera rotation; rows are the camera's right, up and backward axes."""
        yaw, pitch, roll = np.deg2rad(self.yaw), np.deg2rad(self.pitch), np.deg2rad(self.roll)
        backward = np.array(
            [np.sin(yaw) * np.cos(pitch), np.sin(pitch), np.cos(yaw) * np.cos(pitch)]
        )
        right = np.array([np.cos(yaw), 0.0, -np.sin(yaw)])
        up = np.cross(backward, right)
        if roll:
            right, up = (
                np.cos(roll) * right - np.sin(roll) * up,
                np.sin(roll) * right + np.cos(roll) * up,
            )
        return np.stack([right, up, backward])


VIEWS: dict[str, Camera] = {
    "front": Camera(),
    "left": Camera(yaw=90.0),
    "back": Camera(yaw=180.0),
    "right": Camera(yaw=-90.0),
    "three_quarter": Camera(yaw=35.0, pitch=15.0),
    "top": Camera(pitch=90.0, center=(0.0, 0.0, 0.0), half_extent=0.2),
}


@dataclass(frozen=True)
class Appearance:
    """Colours in linear [0, 1] RGB."""

    hair: tuple[float, float, float] = (0.28, 0.17, 0.09)
    skin: tuple[float, float, float] = (0.85, 0.68, 0.56)
    background: tuple[float, float, float] = (0.82, 0.84, 0.86)

    @classmethod
    def from_style(cls, style: StyleParams) -> Appearance:
        blond, brown, black = (
            np.array([0.85, 0.7, 0.45]),
            np.array([0.33, 0.2, 0.1]),
            np.array([0.05, 0.04, 0.035]),
        )
        m = style.melanin
        hair = (
            (1 - 2 * m) * blond + 2 * m * brown
            if m < 0.5
            else (2 - 2 * m) * brown + (2 * m - 1) * black
        )
        hair = (1 - style.redness) * hair + style.redness * np.array([0.6, 0.18, 0.06]) * (1.2 - m)
        skin = (1 - style.skin_tone) * np.array([0.93, 0.77, 0.66]) + style.skin_tone * np.array(
            [0.36, 0.23, 0.16]
        )
        return cls(hair=tuple(np.clip(hair, 0, 1).tolist()), skin=tuple(skin.tolist()))


@dataclass(frozen=True)
class Render:
    """``rgb`` (H, W, 3) uint8; ``hair_mask`` (H, W) bool, hair covers at least half the pixel;
    ``orientation`` (H, W) float32, 2D strand direction in [0, pi) radians (0 = image right,
    pi/2 = image up), NaN where no hair; ``depth`` (H, W) float32, the visible hair's distance
    along the view from the plane through ``camera.center`` (metres; smaller is nearer), NaN
    where no hair. With ``keep_fine``: ``fine_rgb`` and ``fine_coverage``,
    the supersampled raster before the box filter (the conditioning maps are measured on it)."""

    rgb: np.ndarray
    hair_mask: np.ndarray
    orientation: np.ndarray = field(repr=False)
    depth: np.ndarray | None = field(default=None, repr=False)
    fine_rgb: np.ndarray | None = field(default=None, repr=False)
    fine_coverage: np.ndarray | None = field(default=None, repr=False)


def render_groom(
    points: np.ndarray,
    camera: Camera = VIEWS["front"],
    size: int = CONDITIONING_SIZE,
    appearance: Appearance = Appearance(),
    head: Head = DEFAULT_HEAD,
    supersample: int = 2,
    keep_fine: bool = False,
) -> Render:
    """Draw strands ``(N, K, 3)`` (metres, head frame) over the head as seen by ``camera``."""
    res = size * supersample
    rotation = camera.rotation()
    head_depth, head_rgb = _render_head(camera, rotation, res, appearance, head)
    image = np.where(
        np.isfinite(head_depth)[..., None], head_rgb, np.asarray(appearance.background)
    )
    hair_pixel, hair_rgb, hair_tangent, hair_depth = _rasterise_hair(
        points, camera, rotation, res, head_depth, appearance, head
    )
    flat = image.reshape(-1, 3)
    flat[hair_pixel] = hair_rgb
    covered = np.zeros(res * res, dtype=np.float64)
    covered[hair_pixel] = 1.0
    # Undirected 2D orientation, averaged over sub-pixels as doubled-angle vectors.
    angle = np.arctan2(hair_tangent[:, 1], hair_tangent[:, 0])
    doubled = np.zeros((res * res, 2))
    doubled[hair_pixel] = np.stack([np.cos(2 * angle), np.sin(2 * angle)], axis=-1)

    depth_sum = np.zeros(res * res)
    depth_sum[hair_pixel] = hair_depth
    depth_sum = _box_down(depth_sum.reshape(res, res, 1), supersample)[..., 0]
    coverage = _box_down(covered.reshape(res, res, 1), supersample)[..., 0]
    doubled = _box_down(doubled.reshape(res, res, 2), supersample)
    orientation = np.mod(0.5 * np.arctan2(doubled[..., 1], doubled[..., 0]), np.pi).astype(
        np.float32
    )
    orientation[coverage == 0] = np.nan
    rgb = _box_down(image, supersample)
    to_bytes = lambda linear: np.clip(np.round(_to_srgb(linear) * 255), 0, 255).astype(np.uint8)  # noqa: E731
    return Render(
        rgb=to_bytes(rgb),
        hair_mask=coverage >= 0.5,
        orientation=orientation,
        depth=np.where(coverage > 0, depth_sum / np.maximum(coverage, 1e-12), np.nan).astype(
            np.float32
        ),
        fine_rgb=to_bytes(image) if keep_fine else None,
        fine_coverage=covered.reshape(res, res).astype(np.float32) if keep_fine else None,
    )


def _box_down(image: np.ndarray, factor: int) -> np.ndarray:
    h, w, c = image.shape
    return image.reshape(h // factor, factor, w // factor, factor, c).mean(axis=(1, 3))


def _to_srgb(linear: np.ndarray) -> np.ndarray:
    return np.where(
        linear <= 0.0031308,
        12.92 * linear,
        1.055 * np.power(np.clip(linear, 0, 1), 1 / 2.4) - 0.055,
    )


def _pixel_grid(camera: Camera, res: int) -> tuple[np.ndarray, np.ndarray]:
    """Camera-space x, y of every pixel centre (rows top to bottom)."""
    coords = (np.arange(res) + 0.5) / res * 2.0 - 1.0
    x, y = np.meshgrid(coords * camera.half_extent, -coords * camera.half_extent, indexing="xy")
    return x, y


def _render_head(
    camera: Camera, rotation: np.ndarray, res: int, appearance: Appearance, head: Head
) -> tuple[np.ndarray, np.ndarray]:
    """Exact ray-cast of the skull ellipsoid and neck cylinder: depth (inf = miss) and shaded RGB."""
    x, y = _pixel_grid(camera, res)
    far = 10.0
    origin = np.stack([x, y, np.full_like(x, far)], -1) @ rotation + np.asarray(camera.center)
    direction = -rotation[2]  # every orthographic ray looks along the camera's forward axis
    radii = head.radii_array
    o, d = origin / radii, direction / radii
    a = d @ d
    b = 2 * o @ d
    c = np.einsum("...i,...i->...", o, o) - 1.0
    disc = b * b - 4 * a * c
    t_skull = np.where(disc >= 0, (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a), np.inf)

    o_xz = np.stack([origin[..., 0], origin[..., 2] - head.neck_z], -1)
    d_xz = np.array([direction[0], direction[2]])
    a_n = d_xz @ d_xz
    t_neck = np.full(x.shape, np.inf)
    if a_n > 1e-9:
        b_n = 2 * o_xz @ d_xz
        c_n = np.einsum("...i,...i->...", o_xz, o_xz) - head.neck_radius**2
        disc_n = b_n * b_n - 4 * a_n * c_n
        t = (-b_n - np.sqrt(np.maximum(disc_n, 0))) / (2 * a_n)
        hit_y = origin[..., 1] + t * direction[1]
        t_neck = np.where((disc_n >= 0) & (hit_y < head.neck_top), t, np.inf)

    t_hit = np.minimum(t_skull, t_neck)
    hit = origin + np.where(np.isfinite(t_hit), t_hit, 0.0)[..., None] * direction
    skull_normal = hit / radii**2
    neck_normal = np.stack([hit[..., 0], np.zeros_like(x), hit[..., 2] - head.neck_z], -1)
    normal = np.where((t_skull <= t_neck)[..., None], skull_normal, neck_normal)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True) + 1e-12
    lambert = np.clip(normal @ (_LIGHT @ rotation), 0.0, 1.0)
    rgb = np.asarray(appearance.skin) * (0.3 + 0.7 * lambert)[..., None]
    return t_hit - far, rgb


def _rasterise_hair(
    points: np.ndarray,
    camera: Camera,
    rotation: np.ndarray,
    res: int,
    head_depth: np.ndarray,
    appearance: Appearance,
    head: Head,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Visible hair per pixel: flat pixel indices, their linear RGB, 2D image-plane tangents and
    depths (metres along the view; smaller is nearer)."""
    points = np.asarray(points, dtype=np.float64)
    if points.size == 0:
        return np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros((0, 2)), np.zeros(0)
    n_points = points.shape[1]
    cam = (points - np.asarray(camera.center)) @ rotation.T
    scale = res / (2.0 * camera.half_extent)
    px = np.stack(
        [(cam[..., 0] + camera.half_extent) * scale, (camera.half_extent - cam[..., 1]) * scale], -1
    )
    start, end = px[:, :-1].reshape(-1, 2), px[:, 1:].reshape(-1, 2)
    depth_start, depth_end = -cam[:, :-1, 2].ravel(), -cam[:, 1:, 2].ravel()
    counts = np.ceil(np.linalg.norm(end - start, axis=-1)).astype(np.int64) + 1
    segment = np.repeat(np.arange(len(counts)), counts)
    first = np.cumsum(counts) - counts
    along = (np.arange(len(segment)) - first[segment] + 0.5) / counts[segment]
    sample_px = start[segment] + along[:, None] * (end - start)[segment]
    sample_depth = depth_start[segment] + along * (depth_end - depth_start)[segment]
    col, row = (
        np.floor(sample_px[:, 0]).astype(np.int64),
        np.floor(sample_px[:, 1]).astype(np.int64),
    )
    on_image = (col >= 0) & (col < res) & (row >= 0) & (row < res)
    pixel = row[on_image] * res + col[on_image]
    segment, along, sample_depth = segment[on_image], along[on_image], sample_depth[on_image]
    visible = sample_depth < head_depth.ravel()[pixel] - 1e-4
    pixel, segment, along, sample_depth = (
        pixel[visible],
        segment[visible],
        along[visible],
        sample_depth[visible],
    )
    # Z-buffer: sort by (pixel, depth) in one key and keep the nearest sample of each pixel.
    depth_key = np.clip((sample_depth + 1.0) * 2**21, 0, 2**22 - 1).astype(np.int64)
    order = np.argsort(pixel * 2**22 + depth_key, kind="stable")
    pixel, segment, along = pixel[order], segment[order], along[order]
    sample_depth = sample_depth[order]
    nearest = np.concatenate([[True], pixel[1:] != pixel[:-1]]) if len(pixel) else np.zeros(0, bool)
    pixel, segment, along = pixel[nearest], segment[nearest], along[nearest]
    sample_depth = sample_depth[nearest]

    strand, index = np.divmod(segment, n_points - 1)
    tangent_cam = cam[strand, index + 1] - cam[strand, index]
    tangent_cam /= np.linalg.norm(tangent_cam, axis=-1, keepdims=True) + 1e-12
    world = points[strand, index] + along[:, None] * (
        points[strand, index + 1] - points[strand, index]
    )
    rgb = _shade_hair(
        tangent_cam, world, (index + along) / (n_points - 1), strand, appearance, head
    )
    image_tangent = np.stack([tangent_cam[:, 0], tangent_cam[:, 1]], -1)
    return pixel, rgb, image_tangent, sample_depth


def _shade_hair(
    tangent: np.ndarray,
    world: np.ndarray,
    root_to_tip: np.ndarray,
    strand: np.ndarray,
    appearance: Appearance,
    head: Head,
) -> np.ndarray:
    view = np.array([0.0, 0.0, 1.0])
    half = (_LIGHT + view) / np.linalg.norm(_LIGHT + view)
    diffuse = np.sqrt(np.clip(1.0 - (tangent @ _LIGHT) ** 2, 0.0, 1.0))
    specular = np.clip(1.0 - (tangent @ half) ** 2, 0.0, 1.0) ** 40
    # Self-shadowing stand-in: hair close to the skin and near the roots sits under other hair.
    above_skin = (head.skull_level(world) - 1.0) * min(head.radii)
    occlusion = (0.45 + 0.55 * np.clip(above_skin / 0.02, 0.0, 1.0)) * (0.8 + 0.2 * root_to_tip)
    strand_tint = 0.88 + 0.24 * ((strand * 2654435761) % 1000 / 1000.0)  # per-strand albedo spread
    albedo = np.asarray(appearance.hair)[None] * strand_tint[:, None]
    return (albedo * (0.2 + 0.8 * diffuse)[:, None] + 0.3 * specular[:, None]) * occlusion[:, None]


def orientation_to_rgb(orientation: np.ndarray) -> np.ndarray:
    """Colour-code an orientation map (hue = direction, black = no hair) for inspection."""
    hue = np.nan_to_num(orientation / np.pi * 255.0, nan=0.0).astype(np.uint8)
    value = np.where(np.isnan(orientation), 0, 255).astype(np.uint8)
    hsv = np.stack([hue, np.full_like(hue, 255), value], -1)
    return np.asarray(Image.fromarray(hsv, "HSV").convert("RGB"))


def render_views(
    points: np.ndarray,
    views: tuple[str, ...] = ("front", "three_quarter", "left", "back", "top"),
    size: int = 256,
    appearance: Appearance = Appearance(),
    head: Head = DEFAULT_HEAD,
) -> dict[str, Render]:
    """Inspection renders of one groom from several named views (see :data:`VIEWS`)."""
    return {name: render_groom(points, VIEWS[name], size, appearance, head) for name in views}


def side_by_side(images: list[np.ndarray], gap: int = 4, background: int = 255) -> np.ndarray:
    """Images of possibly different sizes in one row, top-aligned, separated by ``gap`` pixels."""
    height = max(image.shape[0] for image in images)
    tiles = []
    for image in images:
        rgb = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=-1)
        tile = np.full((height, rgb.shape[1] + gap, 3), background, dtype=np.uint8)
        tile[: rgb.shape[0], : rgb.shape[1]] = rgb
        tiles.append(tile)
    return np.concatenate(tiles, axis=1)[:, :-gap]


def contact_sheet(
    points: np.ndarray,
    appearance: Appearance = Appearance(),
    input_image: np.ndarray | list[np.ndarray] | None = None,
    size: int = 256,
) -> np.ndarray:
    """Front, three-quarter, side and back renders in one row, after the input picture(s)."""
    views = render_views(points, ("front", "three_quarter", "left", "back"), size, appearance)
    tiles = [view.rgb for view in views.values()]
    inputs = [] if input_image is None else input_image
    for picture in reversed(inputs if isinstance(inputs, list) else [inputs]):
        picture = Image.fromarray(np.asarray(picture, dtype=np.uint8))
        tiles.insert(0, np.asarray(picture.resize((size, size), Image.Resampling.LANCZOS)))
    return side_by_side(tiles)


def save_png(path: str | os.PathLike[str], image: np.ndarray) -> None:
    """Write an (H, W) or (H, W, 3) uint8 image as PNG, atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(tmp, format="PNG")
