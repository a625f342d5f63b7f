"""Atomic outputs: whole or absent, with the permissions the umask asks for."""

import os

import pytest

from difforge.core.io import atomic_dir, atomic_open, write_json


def test_failed_write_leaves_nothing_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_open(target) as fh:
        fh.write("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]  # no temp file left behind


def test_atomic_outputs_follow_the_umask(tmp_path):
    write_json(tmp_path / "a.json", {"x": 1})
    with atomic_dir(tmp_path / "folder") as tmp:
        (tmp / "f.txt").write_text("x")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o666 & ~mask
    assert (tmp_path / "folder").stat().st_mode & 0o777 == 0o777 & ~mask
