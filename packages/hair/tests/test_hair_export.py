"""Strand files round-trip through our own readers; bad files are one-line errors."""

from __future__ import annotations

import numpy as np
import pytest

from difforge.core.errors import UserError
from difforge.hair.data.groom import generate_groom
from difforge.hair.data.styles import sample_style
from difforge.hair.export import (
    read_npz,
    read_obj,
    read_ply,
    read_strands,
    read_usd,
    write_npz,
    write_obj,
    write_ply,
    write_usd,
)


@pytest.fixture(scope="module")
def groom():
    return generate_groom(sample_style(8, "curly"), 300, 16)


def test_ply_binary_and_ascii_round_trip(tmp_path, groom):
    for binary in (True, False):
        path = tmp_path / f"groom_{binary}.ply"
        write_ply(path, groom.points, binary=binary)
        header = path.read_bytes().split(b"end_header")[0].decode()
        assert f"element vertex {groom.n_strands * 16}" in header
        assert f"element edge {groom.n_strands * 15}" in header  # the segments of every strand
        np.testing.assert_allclose(read_ply(path), groom.points, atol=1e-6)


def test_obj_has_one_polyline_per_strand_and_round_trips(tmp_path, groom):
    path = tmp_path / "groom.obj"
    write_obj(path, groom.points)
    lines = path.read_text().splitlines()
    polylines = [line for line in lines if line.startswith("l ")]
    assert len(polylines) == groom.n_strands and len(polylines[0].split()) == 1 + 16
    np.testing.assert_allclose(read_obj(path), groom.points, atol=1e-6)


def test_npz_and_usd_round_trip(tmp_path, groom):
    write_npz(tmp_path / "groom.npz", groom.points, groom.root_uv)
    points, root_uv = read_npz(tmp_path / "groom.npz")
    np.testing.assert_array_equal(points, groom.points)
    np.testing.assert_array_equal(root_uv, groom.root_uv)
    for suffix in (".usda", ".usdc"):
        write_usd(tmp_path / f"groom{suffix}", groom.points)
        np.testing.assert_array_equal(read_usd(tmp_path / f"groom{suffix}"), groom.points)
    assert "BasisCurves" in (tmp_path / "groom.usda").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["groom.npz", "groom.usda", "groom.usdc"]


def test_z_up_export_rotates_about_x(tmp_path):
    strand = np.array(
        [[[0.0, 0.1, 0.0], [0.0, 0.1, 0.05]]], dtype=np.float32
    )  # root on top, tip forward
    write_ply(tmp_path / "z.ply", strand, up_axis="z")
    np.testing.assert_allclose(
        read_ply(tmp_path / "z.ply"), [[[0, 0, 0.1], [0, -0.05, 0.1]]], atol=1e-7
    )
    write_usd(tmp_path / "z.usda", strand, up_axis="z")
    assert 'upAxis = "Z"' in (tmp_path / "z.usda").read_text()


def test_bad_inputs_are_one_line_errors_and_leave_no_file(tmp_path, groom):
    (tmp_path / "junk.ply").write_bytes(
        b"ply\nformat binary_little_endian 1.0\nelement vertex 9\nend_header\n"
    )
    (tmp_path / "junk.obj").write_text("v 0 0 0\n")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    cases = [
        lambda: read_ply(tmp_path / "junk.ply"),
        lambda: read_obj(tmp_path / "junk.obj"),
        lambda: read_npz(tmp_path / "junk.npz"),
        lambda: read_strands(tmp_path / "missing.ply"),
        lambda: read_strands(tmp_path / "groom.xyz"),
        lambda: write_ply(tmp_path / "flat.ply", groom.points[:, 0]),
        lambda: write_usd(tmp_path / "groom.abc", groom.points),
        lambda: write_npz(tmp_path / "uv.npz", groom.points, groom.root_uv[:-1]),
        lambda: write_obj(tmp_path / "up.obj", groom.points, up_axis="x"),
    ]
    for case in cases:
        with pytest.raises(UserError) as info:
            case()
        assert "\n" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.npz", "junk.obj", "junk.ply"]
