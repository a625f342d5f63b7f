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


def test_an_existing_folder_is_replaced_only_when_asked(tmp_path):
    from difforge.core.errors import UserError

    target = tmp_path / "model"
    target.mkdir()
    (target / "user_data.csv").write_text("precious\n")
    with (
        pytest.raises(UserError, match="already exists; pass --overwrite"),
        atomic_dir(target, overwrite=False) as tmp,
    ):
        (tmp / "new.txt").write_text("x")
    assert (target / "user_data.csv").read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    with atomic_dir(target, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("x")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]


def test_a_folder_never_replaces_a_file_and_a_file_never_a_folder(tmp_path):
    from difforge.core.errors import UserError

    (tmp_path / "x.glb").mkdir()
    with pytest.raises(UserError, match="is a folder"), atomic_open(tmp_path / "x.glb") as fh:
        fh.write("mesh")
    (tmp_path / "f").write_text("file")
    with pytest.raises(UserError, match="not a folder"), atomic_dir(tmp_path / "f", overwrite=True):
        pass
    assert (tmp_path / "x.glb").is_dir() and (tmp_path / "f").read_text() == "file"


def test_atomic_paths_write_all_or_none(tmp_path):
    from difforge.core.io import atomic_paths

    with (
        pytest.raises(RuntimeError),
        atomic_paths([tmp_path / "a.ply", tmp_path / "b.obj"]) as tmps,
    ):
        tmps[0].write_text("a")
        raise RuntimeError("the second output failed")
    assert list(tmp_path.iterdir()) == []
    with atomic_paths([tmp_path / "a.ply", tmp_path / "b.obj"]) as tmps:
        for tmp in tmps:
            tmp.write_text("ok")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ply", "b.obj"]
