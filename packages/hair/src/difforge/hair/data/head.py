"""The head every groom grows on: an ellipsoid skull plus a neck cylinder, metres, head frame.

Head frame: origin at the skull centre, +y up, +z out of the face, +x the subject's left (so +x is
on the right of a front view). The scalp is parameterised by the skull's parametric polar angle
theta (0 at the top) and azimuth phi (0 at the face, +90 deg at +x). Scalp UVs are the azimuthal
equidistant projection of (theta, phi) onto the unit square: the crown at (0.5, 0.5), the face
side at small v, the nape at large v, +x at large u. Everything is vectorised over leading axes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Polar angle of the UV disk's rim: the lowest scalp any style can use (the nape sits at ~118 deg).
UV_MAX_THETA = np.deg2rad(123.0)
_FRAME_POLE_THETA = np.deg2rad(
    150.0
)  # where the root-frame tangent field vanishes (under the chin)


@dataclass(frozen=True)
class Head:
    """Skull ellipsoid semi-axes and neck cylinder, all in metres (average adult proportions)."""

    radii: tuple[float, float, float] = (0.078, 0.100, 0.095)
    neck_radius: float = 0.052
    neck_top: float = -0.04  # the neck's top end is hidden inside the skull
    neck_z: float = -0.012

    @property
    def radii_array(self) -> np.ndarray:
        return np.asarray(self.radii, dtype=np.float64)

    def scalp_points(self, theta: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Points and outward unit normals of the skull at parametric angles ``(theta, phi)``."""
        unit = _unit_direction(theta, phi)
        points = unit * self.radii_array
        normals = unit / self.radii_array
        normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
        return points, normals

    def angles(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Parametric ``(theta, phi)`` of points (on or near the skull)."""
        unit = points / self.radii_array
        unit = unit / np.linalg.norm(unit, axis=-1, keepdims=True)
        theta = np.arccos(np.clip(unit[..., 1], -1.0, 1.0))
        phi = np.arctan2(unit[..., 0], unit[..., 2])
        return theta, phi

    def frames(self, theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
        """Root-local frames ``(..., 3, 3)`` with columns tangent, bitangent, normal.

        By the hairy-ball theorem every tangent field on a sphere vanishes somewhere. The tangent
        here is d/dX of the stereographic chart projected from a pole under the chin (theta = 150
        deg, phi = 0), a field that vanishes only at that pole, at least 84 deg of arc from any
        scalp point, so frames turn smoothly over every scalp (under 15 deg per cm).
        On top of the head the tangent points toward +x (the subject's left).
        """
        # Rotate the pole onto +z, take stereographic coordinates (X, Y) = (x, y) / (1 - z) there,
        # and map the chart's d/dX back.
        pole = np.array([0.0, np.cos(_FRAME_POLE_THETA), np.sin(_FRAME_POLE_THETA)])
        to_pole = np.stack([np.array([1.0, 0.0, 0.0]), np.cross(pole, [1.0, 0.0, 0.0]), pole])
        unit = _unit_direction(theta, phi) @ to_pole.T
        denom = np.maximum(1.0 - unit[..., 2], 1e-9)
        x_s, y_s = unit[..., 0] / denom, unit[..., 1] / denom
        s = x_s**2 + y_s**2 + 1.0
        sphere_tangent = (
            np.stack([s - 2.0 * x_s**2, -2.0 * x_s * y_s, 2.0 * x_s], axis=-1) @ to_pole
        )
        _, normals = self.scalp_points(theta, phi)
        tangent = sphere_tangent * self.radii_array  # push forward onto the ellipsoid
        tangent -= np.sum(tangent * normals, axis=-1, keepdims=True) * normals
        tangent /= np.linalg.norm(tangent, axis=-1, keepdims=True)
        bitangent = cross(normals, tangent)
        return np.stack([tangent, bitangent, normals], axis=-1)

    def skull_level(self, points: np.ndarray) -> np.ndarray:
        """Normalised ellipsoid radius: < 1 inside the skull, 1 on it, > 1 outside."""
        scaled = points / self.radii_array
        return np.sqrt(np.einsum("...i,...i->...", scaled, scaled))

    def inside(self, points: np.ndarray, tolerance: float = 0.0) -> np.ndarray:
        """Whether points lie inside the skull or the neck by more than ``tolerance`` metres."""
        skull = self.skull_level(points) < 1.0 - tolerance / max(self.radii)
        radial = np.hypot(points[..., 0], points[..., 2] - self.neck_z)
        neck = (radial < self.neck_radius - tolerance) & (points[..., 1] < self.neck_top)
        return skull | neck

    def push_outside(
        self, points: np.ndarray, margin: float = 0.001, iterations: int = 4
    ) -> np.ndarray:
        """Move points that are inside (or within ``margin`` of) the skull or neck out to ``margin``.

        Skull points move along the ellipsoid's radial line, neck points radially from its axis.
        Near the skull-neck junction one push can land inside the other shape, so a few passes run.
        """
        points = np.array(points, dtype=np.float64, copy=True)
        skull_target = 1.0 + margin / min(self.radii)
        for _ in range(iterations):
            level = self.skull_level(points)
            in_skull = level < skull_target
            points[in_skull] *= (skull_target / np.maximum(level[in_skull], 1e-9))[:, None]
            offset_x, offset_z = points[..., 0], points[..., 2] - self.neck_z
            radial = np.hypot(offset_x, offset_z)
            in_neck = (radial < self.neck_radius + margin) & (points[..., 1] < self.neck_top)
            if not in_neck.any() and not in_skull.any():
                break
            scale = (self.neck_radius + margin) / np.maximum(radial[in_neck], 1e-9)
            points[in_neck, 0] = offset_x[in_neck] * scale
            points[in_neck, 2] = offset_z[in_neck] * scale + self.neck_z
        return points


DEFAULT_HEAD = Head()


def _unit_direction(theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    theta, phi = np.asarray(theta, dtype=np.float64), np.asarray(phi, dtype=np.float64)
    sin_t = np.sin(theta)
    return np.stack([sin_t * np.sin(phi), np.cos(theta), sin_t * np.cos(phi)], axis=-1)


def cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product over the last axis (several times faster than ``np.cross`` on big arrays)."""
    a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    return np.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)


def uv_from_angles(theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Scalp UVs in [0, 1]^2 (azimuthal equidistant projection around the crown)."""
    rho = np.asarray(theta) / UV_MAX_THETA
    return np.stack([0.5 + 0.5 * rho * np.sin(phi), 0.5 - 0.5 * rho * np.cos(phi)], axis=-1)


def angles_from_uv(uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`uv_from_angles`; UVs outside the unit disk map beyond the scalp rim."""
    du, dv = 2.0 * uv[..., 0] - 1.0, 1.0 - 2.0 * uv[..., 1]
    return np.hypot(du, dv) * UV_MAX_THETA, np.arctan2(du, dv)
