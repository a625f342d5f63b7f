"""Pieces every ``difforge-<name>`` command shares: one-line errors, config arguments, progress, device.

A domain CLI looks like::

    @run_cli
    def main(argv: list[str] | None = None) -> int:
        parser = argparse.ArgumentParser(prog="difforge-traj")
        add_config_arguments(parser)
        args = parser.parse_args(argv)
        config = config_from_args(TrajTrainConfig, args)
        ...
        return 0
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import torch
from tqdm.auto import tqdm

from difforge.core.config import load_config
from difforge.core.errors import UserError

__all__ = [
    "add_config_arguments",
    "config_from_args",
    "progress",
    "resolve_device",
    "run_cli",
]

ConfigT = TypeVar("ConfigT")
EXIT_INTERRUPTED = 130  # the shell's code for a process stopped by Ctrl-C (128 + SIGINT)


def run_cli(main_fn: Callable[..., int | None]) -> Callable[..., int]:
    """Wrap a CLI entry point: a UserError prints ``error: <message>`` on one line and returns its
    exit code (2) instead of a traceback; Ctrl-C prints ``error: interrupted`` and returns 130.

    The wrapped function returns the exit code, as console-script entry points expect.
    """

    @functools.wraps(main_fn)
    def wrapper(*args: Any, **kwargs: Any) -> int:
        try:
            code = main_fn(*args, **kwargs)
        except UserError as exc:
            _print_error(str(exc))
            return exc.exit_code
        except KeyboardInterrupt:
            _print_error("interrupted")
            return EXIT_INTERRUPTED
        return 0 if code is None else code

    return wrapper


def _print_error(message: str) -> None:
    one_line = " ".join(message.split())
    print(f"error: {one_line}", file=sys.stderr, flush=True)


def add_config_arguments(
    parser: argparse.ArgumentParser, default_config: str | Path | None = None
) -> None:
    """Add ``--config FILE.yaml`` and trailing ``key=value`` overrides to ``parser``."""
    parser.add_argument(
        "--config",
        type=Path,
        default=default_config,
        metavar="FILE.yaml",
        help="YAML config file; its keys override the defaults"
        + (f" (default: {default_config})" if default_config else ""),
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        default=[],
        metavar="key=value",
        help="config overrides applied after the file, e.g. model.hidden_size=256 train.lr=3e-4",
    )


def config_from_args(cls: type[ConfigT], args: argparse.Namespace) -> ConfigT:
    """The config ``cls`` built from the defaults, ``args.config`` and ``args.overrides``."""
    return load_config(cls, args.config, args.overrides)


def progress(
    iterable: Iterable[Any] | None = None,
    *,
    total: int | None = None,
    desc: str | None = None,
    disable: bool | None = None,
    **kwargs: Any,
) -> tqdm:
    """A tqdm bar on stderr; ``disable=None`` shows it only when stderr is a terminal."""
    if disable is None:
        disable = not sys.stderr.isatty()
    return tqdm(iterable, total=total, desc=desc, disable=disable, dynamic_ncols=True, **kwargs)


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA if available else CPU; ``"cpu"``, ``"cuda"``, ``"cuda:1"`` are checked."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError):
        raise UserError(f"unknown device {device!r} (use auto, cpu, cuda or cuda:N)") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(
                f"device {device!r} requested but CUDA is not available on this machine"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise UserError(
                f"device {device!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    elif resolved.type != "cpu":
        raise UserError(f"unsupported device {device!r} (use auto, cpu, cuda or cuda:N)")
    return resolved
