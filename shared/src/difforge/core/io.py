"""Atomic file writing: outputs appear whole or not at all, and never replace a user's folder.

- :func:`atomic_path` / :func:`atomic_open` / :func:`write_json`: one file.
- :func:`atomic_paths`: several files that appear together or not at all.
- :func:`atomic_dir`: a folder; an existing non-empty folder is replaced only with ``overwrite``.
- :func:`exclusive_lock`: one process at a time in a folder (two ``train`` runs on one ``--out``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from difforge.core.errors import UserError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and rename it onto ``path``.

    On any exception the temporary file is removed and ``path`` is left untouched, so a crash or a
    bad input never leaves a half-written output behind.
    """
    target = Path(path)
    if target.is_dir():
        raise UserError(f"{target} is a folder; give a file name to write")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes files owner-only; outputs follow the umask
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike[str], mode: str = "w", **kwargs: Any
) -> Iterator[TextIO | BinaryIO]:
    """``open`` for writing that commits the file only if the block finishes without error."""
    if not mode.startswith("w"):
        raise ValueError("atomic_open only writes files (mode 'w', 'wb', 'wt')")
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


@contextlib.contextmanager
def atomic_paths(paths: Sequence[str | os.PathLike[str]]) -> Iterator[list[Path]]:
    """Temporary paths for several outputs: all are renamed into place at the end, or, when the
    block fails, all are removed and no target is touched (no half set of outputs)."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(atomic_path(p)) for p in paths]


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, sort_keys=False)
        fh.write("\n")


@contextlib.contextmanager
def atomic_dir(path: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; on success fsync it and rename it to ``path``.

    On an exception the temporary folder is deleted and ``path`` keeps its old content. An
    existing empty folder is replaced; an existing non-empty one only with ``overwrite=True``
    (moved aside, then deleted once the new folder is in place), otherwise a :class:`UserError`
    is raised before anything is written. An existing file is never replaced by a folder.
    """
    target = Path(path)
    check_folder_output(target, overwrite=overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes folders owner-only
        for file in tmp.rglob("*"):
            if file.is_file():
                with open(file, "rb") as fh:
                    os.fsync(fh.fileno())
        _fsync_dir(tmp)
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.{os.getpid()}.old")
            os.replace(target, old)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_folder_output(target: Path, *, overwrite: bool, flag: str | None = None) -> None:
    """Raise :class:`UserError` unless a folder may be written at ``target``: nothing there, an
    empty folder, or (with ``overwrite``) a folder. ``flag`` names the option in the message."""
    name = f"{flag} {target}" if flag else str(target)
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise UserError(f"{name} exists and is not a folder; choose another path")
    if target.is_dir() and not overwrite and any(target.iterdir()):
        raise UserError(f"{name} already exists; pass --overwrite to replace it")


@contextlib.contextmanager
def exclusive_lock(folder: str | os.PathLike[str], what: str = "run") -> Iterator[None]:
    """Hold ``folder/.lock`` for the block; a second process asking for it gets a one-line
    :class:`UserError` instead of writing beside the first. The lock goes with the process, so a
    killed run never leaves a stale one."""
    import fcntl

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+", encoding="utf-8") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise UserError(
                f"{folder} is in use by another {what} ({holder}); wait for it or choose another folder"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    # Make the rename itself durable; not every platform lets a directory be opened.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
