"""Check every output of a command against its inputs and each other before anything is written.

One rule for every ``difforge-<name>`` command:

- an output that is one of the inputs, a folder output that holds an input, or an output that
  would replace a file inside an input folder (a model's config.json) is an error;
- two outputs naming the same path, or an output inside a folder output, are an error;
- an existing file output is replaced (atomically, when written) only if it is a file;
- an existing non-empty folder output is replaced only with ``--overwrite``;
- the folder an output goes into must be writable.

Usage in a command::

    plan = OutputPlan(overwrite=args.overwrite)
    plan.reads("--data", args.data / "train.csv")
    plan.writes_file("--out", args.out, suffixes=(".csv",))
    plan.writes_file("--png", args.png)          # None (flag not given) is skipped
    plan.check()                                  # one-line UserError, nothing written yet

Checking every path first, then writing each with :mod:`difforge.core.io`, leaves either all of a
command's outputs or none of them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from difforge.core.errors import UserError
from difforge.core.io import check_folder_output

__all__ = ["OutputPlan"]


@dataclass(frozen=True)
class _Entry:
    flag: str
    path: Path
    folder: bool = False


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _same(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        try:
            return os.path.samefile(a, b)
        except OSError:
            pass
    return _resolved(a) == _resolved(b)


def _inside(child: Path, parent: Path) -> bool:
    return _resolved(parent) in _resolved(child).parents


@dataclass
class OutputPlan:
    """The inputs and outputs of one command; :meth:`check` applies the rules of this module."""

    overwrite: bool = False
    inputs: list[_Entry] = field(default_factory=list)
    outputs: list[_Entry] = field(default_factory=list)

    def reads(self, flag: str, path: str | os.PathLike[str] | None) -> OutputPlan:
        """An input file or folder (``flag`` names it in messages)."""
        if path is not None:
            self.inputs.append(_Entry(flag, Path(path)))
        return self

    def writes_file(
        self, flag: str, path: str | os.PathLike[str] | None, suffixes: Sequence[str] = ()
    ) -> OutputPlan:
        """A file output; ``suffixes`` (lower case, with the dot) are the accepted extensions."""
        if path is None:
            return self
        path = Path(path)
        if suffixes and path.suffix.lower() not in suffixes:
            raise UserError(f"{flag} {path}: expected a {' or '.join(suffixes)} file name")
        self.outputs.append(_Entry(flag, path))
        return self

    def writes_folder(self, flag: str, path: str | os.PathLike[str] | None) -> OutputPlan:
        """A folder output (replaced whole when written)."""
        if path is not None:
            self.outputs.append(_Entry(flag, Path(path), folder=True))
        return self

    def check(self) -> None:
        """Raise a one-line :class:`UserError` for the first broken rule; write nothing."""
        for i, out in enumerate(self.outputs):
            for other in self.outputs[:i]:
                if _same(out.path, other.path):
                    raise UserError(
                        f"{other.flag} and {out.flag} both name {out.path}; give each its own path"
                    )
            for other in self.outputs:
                if other.folder and _inside(out.path, other.path):
                    raise UserError(
                        f"{out.flag} {out.path} lies inside the output folder {other.path} "
                        f"({other.flag}); put it elsewhere"
                    )
            for inp in self.inputs:
                if _same(out.path, inp.path):
                    raise UserError(
                        f"{out.flag} {out.path} is the input {inp.flag}; writing it would destroy "
                        "the input, choose another path"
                    )
                if out.folder and _inside(inp.path, out.path):
                    raise UserError(
                        f"{out.flag} {out.path} holds the input {inp.flag} {inp.path}; "
                        "choose another output folder"
                    )
                if out.path.exists() and inp.path.is_dir() and _inside(out.path, inp.path):
                    raise UserError(
                        f"{out.flag} {out.path} would replace a file of the input {inp.flag} "
                        f"{inp.path}; choose another path"
                    )
            self._check_target(out)

    def _check_target(self, out: _Entry) -> None:
        if out.folder:
            check_folder_output(out.path, overwrite=self.overwrite, flag=out.flag)
        elif out.path.is_dir():
            raise UserError(f"{out.flag} {out.path} is a folder; give a file name")
        parent = out.path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise UserError(f"{out.flag} {out.path}: {parent} is not a folder")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise UserError(f"{out.flag} {out.path}: cannot write in {parent} (permission denied)")
