"""What every ``difforge-<name>`` command shares, so that ``--help`` of every command reads alike.

A domain package's ``cli.py`` is a list of :class:`Command` objects turned into its entry point::

    def _add_generate(p: argparse.ArgumentParser) -> None:
        add_device_argument(p)
        add_seed_argument(p)
        p.add_argument("--out", type=Path, required=True)
        add_overwrite_argument(p)

    def _generate(args: argparse.Namespace) -> None:
        ...

    main = command_line(
        "difforge-demo",
        "What the package generates.",
        [Command("generate", "draw samples", _add_generate, _generate)],
    )

Every subcommand gets ``--quiet``/``--verbose``; ``add_config_arguments`` gives ``--config
NAME|FILE.yaml key=value ...`` with named presets from the package's ``configs/<kind>/`` folder
("no config" is the ``default`` preset); numeric flags are range-checked by :func:`int_arg` /
:func:`float_arg`. :func:`run_cli` turns user mistakes, OS errors and Ctrl-C into one line and an
exit code (2, 130) and never shows a traceback for them.
"""

from __future__ import annotations

import argparse
import errno
import functools
import importlib
import logging
import math
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from difforge.core.config import load_config
from difforge.core.errors import ConfigError, UserError

if TYPE_CHECKING:  # torch and tqdm load when a command needs them: `--help` and Ctrl-C stay quick
    import torch
    from tqdm import tqdm

__all__ = [
    "Command",
    "add_config_arguments",
    "add_device_argument",
    "add_overwrite_argument",
    "add_seed_argument",
    "command_line",
    "config_from_args",
    "echo",
    "float_arg",
    "int_arg",
    "load_preset",
    "preset_names",
    "progress",
    "resolve_device",
    "run_cli",
]

ConfigT = TypeVar("ConfigT")
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # the shell's code for a process stopped by Ctrl-C (128 + SIGINT)
MAX_SEED = 2**32 - 1  # numpy's seed range; torch's is wider
DEFAULT_PRESET = "default"
# Set to 1 to see the traceback behind an OS error, for bug reports.
TRACEBACK_ENV = "DIFFORGE_TRACEBACK"

_verbosity = 0  # -1 quiet, 0 normal, 1 verbose: set by the --quiet/--verbose of command_line


# ----------------------------------------------------------------------------------------------
# Errors and exit codes
# ----------------------------------------------------------------------------------------------


def run_cli(main_fn: Callable[..., int | None]) -> Callable[..., int]:
    """Wrap a CLI entry point so that a user never sees a traceback for a user-side problem.

    - :class:`UserError` -> ``error: <message>`` on one line, exit code 2;
    - an OS error (missing or read-only path, full disk) -> ``error: <path>: <reason>``, exit 1;
    - ``MemoryError``, torch's ``OutOfMemoryError`` on a GPU, ``RecursionError`` (a size or
      nesting too large for this machine) -> one line, exit 1;
    - Ctrl-C -> ``error: interrupted``, exit 130 (outputs are written atomically, so nothing
      half-written stays behind).

    Other exceptions are bugs and keep their traceback. The wrapped function returns the exit
    code, as console-script entry points expect.
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
        except BrokenPipeError:
            # `difforge-x ... | head`: the reader left; say nothing more.
            sys.stderr.close()
            return 1
        except OSError as exc:
            if os.environ.get(TRACEBACK_ENV):
                raise
            _print_error(_os_error_message(exc))
            return 1
        except MemoryError:
            _print_error(f"out of memory: {_OUT_OF_MEMORY_HINT}")
            return 1
        except RecursionError:
            _print_error("the input is nested too deeply to read")
            return 1
        except RuntimeError as exc:
            if type(exc).__name__ != "OutOfMemoryError":  # torch's CUDA/MPS out of memory
                raise
            _print_error(f"out of GPU memory: {_OUT_OF_MEMORY_HINT}")
            return 1
        return 0 if code is None else code

    return wrapper


_OUT_OF_MEMORY_HINT = "ask for a smaller size (fewer samples, a smaller batch)"


def _os_error_message(exc: OSError) -> str:
    reason = exc.strerror or (str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    if exc.errno == errno.ENOSPC:
        reason = "no space left on the disk"
    name = exc.filename if exc.filename is not None else None
    return f"{name}: {reason}" if name is not None else reason


def _print_error(message: str) -> None:
    one_line = " ".join(message.split())
    print(f"error: {one_line}", file=sys.stderr, flush=True)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the errors of :func:`run_cli`: one line, exit code 2 (no usage block)."""

    def error(self, message: str) -> Any:
        _print_error(f"{self.prog}: {message} (see {self.prog} --help)")
        raise SystemExit(EXIT_USAGE)


# ----------------------------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """One subcommand: ``add_arguments(parser)`` registers its flags, ``run(args)`` does the work
    (returning None or an exit code); ``run`` may be a ``"package.module:function"`` string, so
    that a command's heavy imports happen only when it runs. ``description`` defaults to
    ``help``. ``args.argv`` holds the command line as typed (for run records)."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int | None] | str
    description: str | None = None

    def runner(self) -> Callable[[argparse.Namespace], int | None]:
        """``run`` itself, or the function a ``"package.module:function"`` string names, imported
        only now: heavy modules load for the command that needs them, not for every ``--help``."""
        if callable(self.run):
            return self.run
        module, _, function = self.run.partition(":")
        return getattr(importlib.import_module(module), function)


def build_parser(
    prog: str, description: str, commands: Sequence[Command]
) -> tuple[ArgumentParser, dict[str, ArgumentParser]]:
    """The parser of a package's command and each subcommand's parser: one per
    :class:`Command`, each with ``--quiet``/``--verbose``."""
    parser = ArgumentParser(prog=prog, description=description)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parsers = {}
    for command in commands:
        sub = subparsers.add_parser(
            command.name,
            help=command.help,
            description=command.description or command.help,
            formatter_class=_HelpFormatter,
        )
        command.add_arguments(sub)
        volume = sub.add_mutually_exclusive_group()
        volume.add_argument(
            "-q", "--quiet", action="store_true", help="print errors only, no progress"
        )
        volume.add_argument("-v", "--verbose", action="store_true", help="print debug logs as well")
        sub.set_defaults(_command=command)
        parsers[command.name] = sub
    return parser, parsers


def command_line(
    prog: str, description: str, commands: Sequence[Command]
) -> Callable[[Sequence[str] | None], int]:
    """The console-script entry point of a package (``main`` in its ``cli.py``).

    A subcommand's positionals and options may come in any order
    (``train --config tiny --out DIR train.steps=5``): each subcommand is parsed with argparse's
    intermixed parsing.
    """

    @run_cli
    def main(argv: Sequence[str] | None = None) -> int | None:
        argv = sys.argv[1:] if argv is None else list(argv)
        parser, parsers = build_parser(prog, description, commands)
        try:
            if argv and argv[0] in parsers:
                args = parsers[argv[0]].parse_intermixed_args(argv[1:])
            else:  # no or an unknown command, or the top-level --help
                args = parser.parse_args(argv)
        except SystemExit as exc:  # --help (0) or a usage error (2, already said in one line)
            return exc.code if isinstance(exc.code, int) else EXIT_USAGE
        args.argv = [prog, *argv]
        set_verbosity(-1 if args.quiet else 1 if args.verbose else 0)
        return args._command.runner()(args)

    return main


class _HelpFormatter(argparse.HelpFormatter):
    """Shows ``(default: X)`` where a flag has a default worth saying (not None or False) and
    its help does not already name it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "default" not in text
            and action.default is not None
            and action.default is not False
            and action.default is not argparse.SUPPRESS
            and action.option_strings
            and action.nargs != 0
        ):
            text += " (default: %(default)s)"
        return text


def set_verbosity(level: int) -> None:
    """-1 quiet (errors only, no progress bars, :func:`echo` silent), 0 normal, 1 debug logs."""
    global _verbosity
    _verbosity = level
    logging.getLogger("difforge").setLevel(
        logging.ERROR if level < 0 else logging.DEBUG if level > 0 else logging.INFO
    )


def echo(*lines: str) -> None:
    """Print result lines on stdout unless ``--quiet``."""
    if _verbosity >= 0:
        for line in lines:
            print(line, flush=True)


# ----------------------------------------------------------------------------------------------
# Shared arguments and range-checked numbers
# ----------------------------------------------------------------------------------------------


def int_arg(
    low: int | None = None, high: int | None = None, *, raise_with: str | None = None
) -> Callable[[str], int]:
    """An argparse ``type`` for an integer in ``[low, high]``; ``raise_with`` tells how to go past
    ``high`` (e.g. "pass --max-strands N"), for limits that protect the machine."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if low is not None and value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        if high is not None and value > high:
            hint = f" ({raise_with})" if raise_with else ""
            raise argparse.ArgumentTypeError(f"must be at most {high}, got {value}{hint}")
        return value

    parse.__name__ = "integer"
    return parse


def float_arg(
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> Callable[[str], float]:
    """An argparse ``type`` for a finite float in ``[low, high]`` (``low_open``: ``> low``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if low is not None and (value <= low if low_open else value < low):
            raise argparse.ArgumentTypeError(
                f"must be {'>' if low_open else '>='} {low:g}, got {value:g}"
            )
        if high is not None and (value >= high if high_open else value > high):
            raise argparse.ArgumentTypeError(
                f"must be {'<' if high_open else '<='} {high:g}, got {value:g}"
            )
        return value

    parse.__name__ = "number"
    return parse


def add_seed_argument(parser: argparse.ArgumentParser, default: int = 0) -> None:
    """``--seed N`` (0 to 2**32 - 1): the same seed gives the same outputs."""
    parser.add_argument(
        "--seed",
        type=int_arg(0, MAX_SEED),
        default=default,
        help="random seed; the same seed gives the same outputs",
    )


def add_device_argument(parser: argparse.ArgumentParser, default: str = "auto") -> None:
    """``--device auto|cpu|cuda|cuda:N`` (auto: CUDA when present, else CPU)."""
    parser.add_argument(
        "--device",
        default=default,
        help="auto (CUDA if available, else CPU), cpu, cuda or cuda:N",
    )


def add_overwrite_argument(parser: argparse.ArgumentParser) -> None:
    """``--overwrite``: allow replacing an existing output folder (files are always replaced)."""
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing output folder (without it, an existing folder is an error)",
    )


# ----------------------------------------------------------------------------------------------
# Configs and presets
# ----------------------------------------------------------------------------------------------


def preset_names(presets_dir: Path) -> list[str]:
    """The named presets of a package's ``configs/<kind>/`` folder."""
    return sorted(p.stem for p in Path(presets_dir).glob("*.yaml"))


def load_preset(
    cls: type[ConfigT],
    presets_dir: Path,
    config: str | os.PathLike[str] | None,
    overrides: Sequence[str] = (),
) -> ConfigT:
    """The config ``cls`` from a preset name (``presets_dir/<name>.yaml``) or a YAML file, then
    ``key=value`` overrides. None is the ``default`` preset, exactly as ``--config default``."""
    name = DEFAULT_PRESET if config is None else str(config)
    preset = Path(presets_dir) / f"{name}.yaml"
    if os.sep not in name and not Path(name).suffix:
        if not preset.is_file():
            raise ConfigError(
                f"no preset {name!r} (presets: {', '.join(preset_names(presets_dir))}; "
                "or give a .yaml file)"
            )
        return load_config(cls, preset, overrides)
    return load_config(cls, name, overrides)


def add_config_arguments(parser: argparse.ArgumentParser, presets_dir: Path | None = None) -> None:
    """``--config NAME|FILE.yaml`` and trailing ``key=value`` overrides. With ``presets_dir`` the
    config may be a preset name and defaults to ``default``."""
    if presets_dir is not None:
        names = ", ".join(preset_names(presets_dir))
        help_text = f"a preset ({names}) or a YAML file; its keys override the defaults"
        default: str | None = DEFAULT_PRESET
    else:
        help_text = "YAML config file; its keys override the defaults"
        default = None
    parser.add_argument("--config", default=default, metavar="NAME|FILE.yaml", help=help_text)
    parser.add_argument(
        "overrides",
        nargs="*",
        default=[],
        metavar="key=value",
        help="config overrides applied after the file, e.g. model.hidden_size=256 train.lr=3e-4",
    )
    parser.set_defaults(_presets_dir=presets_dir)


def config_from_args(cls: type[ConfigT], args: argparse.Namespace) -> ConfigT:
    """The config ``cls`` built from the defaults, ``args.config`` (a preset name or a file, when
    :func:`add_config_arguments` was given a presets folder) and ``args.overrides``."""
    presets_dir = getattr(args, "_presets_dir", None)
    if presets_dir is not None:
        return load_preset(cls, presets_dir, args.config, args.overrides)
    return load_config(cls, args.config, args.overrides)


def progress(
    iterable: Iterable[Any] | None = None,
    *,
    total: int | None = None,
    desc: str | None = None,
    disable: bool | None = None,
    **kwargs: Any,
) -> tqdm:
    """A tqdm bar on stderr; ``disable=None`` shows it only when stderr is a terminal and the
    command is not ``--quiet``."""
    from tqdm.auto import tqdm

    if disable is None:
        disable = _verbosity < 0 or not sys.stderr.isatty()
    return tqdm(iterable, total=total, desc=desc, disable=disable, dynamic_ncols=True, **kwargs)


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA if available else CPU; ``"cpu"``, ``"cuda"``, ``"cuda:1"`` are checked."""
    import torch

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
