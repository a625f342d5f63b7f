"""difforge.core.cli: one-line errors with exit code 2, config arguments, device choice."""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from difforge.core.cli import (
    add_config_arguments,
    config_from_args,
    progress,
    resolve_device,
    run_cli,
)
from difforge.core.errors import UserError
from difforge.core.train import TrainConfig

# A minimal domain CLI, run in its own interpreter to see exactly what a user sees.
SCRIPT = textwrap.dedent(
    """
    import argparse
    from dataclasses import dataclass
    from difforge.core.cli import add_config_arguments, config_from_args, run_cli

    @dataclass(frozen=True)
    class Config:
        steps: int = 10

    @run_cli
    def main(argv=None):
        parser = argparse.ArgumentParser(prog="difforge-demo")
        add_config_arguments(parser)
        print(config_from_args(Config, parser.parse_args(argv)).steps)

    raise SystemExit(main())
    """
)


def _demo_main(argv: list[str]) -> int:
    @run_cli
    def main(argv: list[str]) -> None:
        parser = argparse.ArgumentParser(prog="difforge-demo")
        add_config_arguments(parser)
        config = config_from_args(TrainConfig, parser.parse_args(argv))
        print(config.steps, config.lr)

    return main(argv)


def test_cli_process_prints_one_error_line_and_exits_2(tmp_path: Path) -> None:
    script = tmp_path / "demo_cli.py"
    script.write_text(SCRIPT)
    bad = subprocess.run(
        [sys.executable, str(script), "stpes=3"], capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 2
    assert bad.stderr == "error: unknown config key 'stpes' (did you mean 'steps'?)\n"
    assert bad.stdout == ""


def test_run_cli_config_file_and_wrong_type(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "train.yaml"
    config.write_text("steps: 7\nlr: 2e-4\n")
    assert _demo_main(["--config", str(config), "lr=5e-4"]) == 0
    assert capsys.readouterr().out == "7 0.0005\n"
    assert _demo_main(["--config", str(config), "batch_size=big"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "error: config key 'batch_size' expects int, got 'big' (str)\n"
    assert _demo_main(["--config", str(tmp_path / "nope.yaml")]) == 2
    assert capsys.readouterr().err.startswith("error: config file not found: ")


def test_run_cli_multiline_message_and_interrupt(capsys: pytest.CaptureFixture[str]) -> None:
    @run_cli
    def fails() -> None:
        raise UserError("bad input\n  on two lines")

    @run_cli
    def interrupted() -> None:
        raise KeyboardInterrupt

    assert fails() == 2
    assert capsys.readouterr().err == "error: bad input on two lines\n"
    assert interrupted() == 130
    assert capsys.readouterr().err == "error: interrupted\n"


def test_run_cli_lets_bugs_raise() -> None:
    @run_cli
    def buggy() -> None:
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        buggy()


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UserError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
    with pytest.raises(UserError, match="unsupported device 'meta'"):
        resolve_device("meta")
    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda"
    else:
        with pytest.raises(UserError, match="CUDA is not available"):
            resolve_device("cuda")


def test_progress_hides_when_not_a_terminal_or_asked() -> None:
    # pytest captures stderr, so it is not a terminal here.
    assert progress(range(3)).disable is True
    assert progress(range(3), disable=False).disable is False
    assert list(progress(range(3), disable=True)) == [0, 1, 2]
