"""Strand and head files open in other tools (trimesh always, Open3D where importable), with the
points where we put them; strands resample smoothly to more points."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from difforge.core.errors import UserError
from difforge.hair.data.groom import generate_groom
from difforge.hair.data.head import DEFAULT_HEAD
from difforge.hair.data.styles import sample_style
from difforge.hair.export import read_ply, read_strands, write_obj, write_ply
from difforge.hair.export_tools import NECK_BOTTOM, head_mesh, resample_strands, write_head_mesh

K = 12


@pytest.fixture(scope="module")
def strands():
    return generate_groom(sample_style(8, "wavy"), 200, K).points


def _segments(points: np.ndarray) -> np.ndarray:
    """Every strand segment (N * (K - 1), 6) as start and end coordinates, sorted."""
    pairs = np.concatenate([points[:, :-1], points[:, 1:]], axis=-1).reshape(-1, 6)
    return pairs[np.lexsort(pairs.T[::-1])]


def _path_segments(path: trimesh.path.Path3D) -> np.ndarray:
    chains = [entity.discrete(path.vertices) for entity in path.entities]
    return _segments_of_chains(chains)


def _segments_of_chains(chains: list[np.ndarray]) -> np.ndarray:
    pairs = np.concatenate([np.concatenate([c[:-1], c[1:]], axis=-1) for c in chains])
    return pairs[np.lexsort(pairs.T[::-1])]


@pytest.mark.parametrize("binary", [True, False])
def test_ply_is_an_edge_line_set_that_trimesh_loads_as_lines(tmp_path, strands, binary):
    path = tmp_path / "groom.ply"
    write_ply(path, strands, binary=binary)
    header = path.read_bytes().split(b"end_header")[0].decode()
    n = len(strands)
    assert f"element edge {n * (K - 1)}\nproperty int vertex1\nproperty int vertex2" in header
    assert "element curve" not in header
    loaded = trimesh.load(path)
    assert isinstance(loaded, trimesh.path.Path3D) and len(loaded.entities) == n  # one a strand
    segments = _path_segments(loaded)
    assert len(segments) == n * (K - 1)
    np.testing.assert_allclose(segments, _segments(strands), atol=1e-6)
    np.testing.assert_allclose(read_ply(path), strands, atol=1e-6)


@pytest.mark.parametrize("binary", [True, False])
def test_ply_opens_with_open3d_read_line_set(tmp_path, strands, binary):
    o3d = pytest.importorskip("open3d")
    path = tmp_path / "groom.ply"
    write_ply(path, strands, binary=binary, up_axis="z")
    line_set = o3d.io.read_line_set(str(path))
    points, lines = np.asarray(line_set.points), np.asarray(line_set.lines)
    z_up = np.stack([strands[..., 0], -strands[..., 2], strands[..., 1]], axis=-1)
    np.testing.assert_allclose(points, z_up.reshape(-1, 3), atol=1e-6)
    index = np.arange(points.shape[0]).reshape(len(strands), K)
    np.testing.assert_array_equal(lines, np.stack([index[:, :-1], index[:, 1:]], -1).reshape(-1, 2))
    # Open3D's own writer (doubles, its edge order) reads back to the same strands.
    o3d.io.write_line_set(str(tmp_path / "o3d.ply"), line_set, write_ascii=not binary)
    np.testing.assert_allclose(read_ply(tmp_path / "o3d.ply"), z_up, atol=1e-6)


def _old_curve_ply(points: np.ndarray, binary: bool) -> bytes:
    """A PLY as difforge wrote them before edges: one ``curve`` list element per strand."""
    n, k = points.shape[:2]
    header = (
        f"ply\nformat {'binary_little_endian' if binary else 'ascii'} 1.0\n"
        f"element vertex {n * k}\nproperty float x\nproperty float y\nproperty float z\n"
        f"element curve {n}\nproperty list int int vertex_indices\nend_header\n"
    ).encode()
    curves = np.concatenate([np.full((n, 1), k), np.arange(n * k).reshape(n, k)], axis=1)
    if binary:
        return header + points.astype("<f4").tobytes() + curves.astype("<i4").tobytes()
    rows = [" ".join(f"{v:.9g}" for v in p) for p in points.reshape(-1, 3)]
    rows += [" ".join(str(i) for i in c) for c in curves]
    return header + ("\n".join(rows) + "\n").encode()


@pytest.mark.parametrize("binary", [True, False])
def test_old_curve_plys_still_read(tmp_path, strands, binary):
    path = tmp_path / "old.ply"
    path.write_bytes(_old_curve_ply(strands, binary))
    np.testing.assert_allclose(read_strands(path), strands, atol=1e-6)


def test_foreign_edge_order_and_extra_properties_read_back(tmp_path, strands):
    """Edges in any order, big-endian doubles and an extra per-edge colour: chains still form,
    strands ordered by their roots' indices, roots first."""
    n = len(strands)
    index = np.arange(n * K).reshape(n, K)
    edges = np.stack([index[:, :-1], index[:, 1:]], -1).reshape(-1, 2)
    edges = edges[np.random.default_rng(0).permutation(len(edges))]
    header = (
        "ply\nformat binary_big_endian 1.0\ncomment made elsewhere\n"
        f"element vertex {n * K}\nproperty double x\nproperty double y\nproperty double z\n"
        f"element edge {len(edges)}\nproperty int vertex1\nproperty int vertex2\n"
        "property uchar red\nend_header\n"
    ).encode()
    rows = np.zeros(len(edges), dtype=[("v1", ">i4"), ("v2", ">i4"), ("red", "u1")])
    rows["v1"], rows["v2"], rows["red"] = edges[:, 0], edges[:, 1], 200
    path = tmp_path / "foreign.ply"
    path.write_bytes(header + strands.astype(">f8").tobytes() + rows.tobytes())
    np.testing.assert_allclose(read_ply(path), strands, atol=1e-6)


def test_edges_that_do_not_make_equal_strands_are_one_line_errors(tmp_path):
    def ply(n_vertices: int, edges: list[tuple[int, int]]) -> bytes:
        header = (
            f"ply\nformat ascii 1.0\nelement vertex {n_vertices}\n"
            "property float x\nproperty float y\nproperty float z\n"
            f"element edge {len(edges)}\nproperty int vertex1\nproperty int vertex2\nend_header\n"
        )
        body = "0 0 0\n" * n_vertices + "".join(f"{a} {b}\n" for a, b in edges)
        return (header + body).encode()

    cases = {
        "branch": ply(4, [(0, 1), (1, 2), (1, 3)]),
        "lengths": ply(5, [(0, 1), (1, 2), (3, 4)]),
        "loop": ply(6, [(0, 1), (1, 2), (3, 4), (4, 5), (5, 3)]),
        "missing": ply(2, [(0, 1), (1, 7)]),
        "truncated": ply(3, [(0, 1), (1, 2)])[:-6],
    }
    for name, data in cases.items():
        (tmp_path / f"{name}.ply").write_bytes(data)
        with pytest.raises(UserError) as info:
            read_ply(tmp_path / f"{name}.ply")
        assert "\n" not in str(info.value), name


def test_obj_polylines_in_trimesh(tmp_path, strands):
    """trimesh (5.2) reads an OBJ's ``v`` records but skips ``l`` polylines: it loads a
    PointCloud of every strand point. Should a later trimesh read ``l``, it must give one line
    entity per strand along the strand."""
    write_obj(tmp_path / "groom.obj", strands)
    loaded = trimesh.load(tmp_path / "groom.obj", process=False)
    if isinstance(loaded, trimesh.path.Path3D):
        assert len(loaded.entities) == len(strands)
        np.testing.assert_allclose(_path_segments(loaded), _segments(strands), atol=1e-6)
    else:
        assert isinstance(loaded, trimesh.PointCloud)
        np.testing.assert_allclose(loaded.vertices, strands.reshape(-1, 3), atol=1e-6)


@pytest.mark.parametrize("suffix", [".obj", ".ply"])
def test_head_mesh_file_is_one_closed_head_in_the_strands_frame(tmp_path, suffix):
    radii = np.asarray(DEFAULT_HEAD.radii)
    for up_axis in ("y", "z"):
        path = write_head_mesh(tmp_path / f"head_{up_axis}{suffix}", up_axis=up_axis)
        mesh = trimesh.load(path)
        assert isinstance(mesh, trimesh.Trimesh)
        assert mesh.is_watertight and mesh.is_winding_consistent and mesh.body_count == 1
        assert 2000 <= len(mesh.faces) <= 10000
        vertices = mesh.vertices
        if up_axis == "z":  # (x, y, z) -> (x, -z, y): undo it
            vertices = np.stack([vertices[:, 0], vertices[:, 2], -vertices[:, 1]], axis=-1)
        low, high = vertices.min(0), vertices.max(0)
        np.testing.assert_allclose(high, [radii[0], radii[1], radii[2]], rtol=0.01)
        np.testing.assert_allclose(low, [-radii[0], NECK_BOTTOM, -radii[2]], rtol=0.01)
        # Skull vertices lie on the ellipsoid; the rest on the neck cylinder or its bottom cap.
        skull = vertices[:, 1] > DEFAULT_HEAD.neck_top
        np.testing.assert_allclose(DEFAULT_HEAD.skull_level(vertices[skull]), 1.0, atol=1e-6)
        neck = vertices[~skull]
        radial = np.hypot(neck[:, 0], neck[:, 2] - DEFAULT_HEAD.neck_z)
        on_skull = np.abs(DEFAULT_HEAD.skull_level(neck) - 1.0) < 1e-6
        on_wall = np.abs(radial - DEFAULT_HEAD.neck_radius) < 1e-6
        on_cap = np.abs(neck[:, 1] - NECK_BOTTOM) < 1e-6
        assert np.all(on_skull | on_wall | on_cap)
        # Volume: the skull plus the neck below it, at most plus the neck up to its top.
        ellipsoid, neck_area = (
            4.0 / 3.0 * np.pi * np.prod(radii),
            np.pi * DEFAULT_HEAD.neck_radius**2,
        )
        low_volume = 0.99 * ellipsoid + neck_area * (-radii[1] - NECK_BOTTOM)
        assert (
            low_volume < mesh.volume < ellipsoid + neck_area * (DEFAULT_HEAD.neck_top - NECK_BOTTOM)
        )
    with pytest.raises(UserError):
        write_head_mesh(tmp_path / "head.stl")
    assert len(list(tmp_path.iterdir())) == 2  # atomic: no temporary files left


def test_head_mesh_opens_in_open3d_as_watertight(tmp_path):
    o3d = pytest.importorskip("open3d")
    mesh = o3d.io.read_triangle_mesh(str(write_head_mesh(tmp_path / "head.ply")))
    assert len(mesh.triangles) == len(head_mesh().faces)
    assert mesh.is_watertight() and not mesh.is_self_intersecting()


def _helix(n: int, turns: float = 2.0, radius: float = 0.01, rise: float = 0.05) -> np.ndarray:
    angle = np.linspace(0.0, 2.0 * np.pi * turns, n)
    return np.stack(
        [radius * np.cos(angle), -rise * angle / angle[-1], radius * np.sin(angle)], axis=-1
    )


def _turning(points: np.ndarray) -> np.ndarray:
    d = np.diff(points, axis=-2)
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    return np.arccos(np.clip(np.sum(d[..., 1:, :] * d[..., :-1, :], axis=-1), -1.0, 1.0))


def test_resample_follows_a_smooth_curve_not_its_chords():
    radius, turns, rise = 0.01, 2.0, 0.05
    coarse = _helix(17, turns, radius, rise)[None].astype(np.float32)  # 45 deg per segment
    fine = resample_strands(coarse, 256)
    assert fine.shape == (1, 256, 3) and fine.dtype == np.float32
    np.testing.assert_array_equal(fine[:, [0, -1]], coarse[:, [0, -1]])
    # On the helix: radius kept to 1 % (chords sag 7.6 % in the middle of each segment).
    np.testing.assert_allclose(np.hypot(fine[0, :, 0], fine[0, :, 2]), radius, rtol=0.01)
    true_length = np.hypot(2 * np.pi * turns * radius, rise)
    length = np.linalg.norm(np.diff(fine[0], axis=0), axis=-1)
    assert abs(length.sum() / true_length - 1) < 0.01
    np.testing.assert_allclose(length, length.mean(), rtol=0.02)  # even spacing by arc length
    # Smooth: equal small turns (~2.8 deg; linear interpolation's would be 0 or ~41 deg).
    turning = _turning(fine[0])
    assert turning.max() < np.deg2rad(4.0) and turning.std() < 0.1 * turning.mean()


@pytest.mark.parametrize("n_points", [128, 256, 40])
def test_resample_keeps_roots_tips_and_lengths_of_grooms(n_points):
    points = generate_groom(sample_style(5, "long_straight"), 300, 64).points
    out = resample_strands(points, n_points)
    assert out.shape == (len(points), n_points, 3)
    np.testing.assert_array_equal(out[:, 0], points[:, 0])
    np.testing.assert_array_equal(out[:, -1], points[:, -1])

    def length(p):
        return np.linalg.norm(np.diff(p, axis=1), axis=-1).sum(1)

    np.testing.assert_allclose(length(out), length(points), rtol=0.01)
    if n_points > 64:
        # Finer than the input, the turns spread over the new points instead of staying at the
        # old vertices as they do when the polyline is resampled linearly by arc length.
        bound = {128: 0.9, 256: 0.6}[n_points]  # measured: 0.79 and 0.49
        smooth = np.median(_turning(out).max(1))
        assert smooth < bound * np.median(_turning(_linear_resample(points, n_points)).max(1))


def _linear_resample(points: np.ndarray, n_points: int) -> np.ndarray:
    out = []
    for strand in points.astype(np.float64):
        along = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(strand, axis=0), axis=1))])
        at = np.linspace(0.0, along[-1], n_points)
        out.append(np.stack([np.interp(at, along, strand[:, d]) for d in range(3)], axis=-1))
    return np.asarray(out)


def test_resample_edge_cases_and_errors():
    line = np.array([[[0.0, 0.0, 0.0], [0.0, -0.1, 0.0]]], dtype=np.float32)
    np.testing.assert_allclose(
        resample_strands(line, 5)[0, :, 1], [0, -0.025, -0.05, -0.075, -0.1], atol=1e-7
    )
    assert resample_strands(np.zeros((0, 8, 3)), 16).shape == (0, 16, 3)
    many = np.repeat(_helix(17)[None], 5000, axis=0)  # more than one chunk
    out = resample_strands(many, 33)
    np.testing.assert_allclose(out, np.repeat(out[:1], 5000, axis=0), atol=1e-7)
    for bad in (lambda: resample_strands(line, 1), lambda: resample_strands(line[:, :1], 8)):
        with pytest.raises(UserError):
            bad()
