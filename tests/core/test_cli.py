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


def _toy_commands(seen: dict) -> list:
    from difforge.core.cli import (
        Command,
        add_device_argument,
        add_overwrite_argument,
        add_seed_argument,
        float_arg,
        int_arg,
    )

    def add_generate(p: argparse.ArgumentParser) -> None:
        add_seed_argument(p)
        add_device_argument(p)
        add_overwrite_argument(p)
        p.add_argument(
            "--count",
            type=int_arg(1, 100, raise_with="pass --max-count N"),
            default=1,
            help="how many",
        )
        p.add_argument("--noise", type=float_arg(0.0), default=1.0)
        p.add_argument("--out", type=Path)

    def generate(args: argparse.Namespace) -> None:
        seen.update(vars(args))
        if args.out is not None:
            args.out.write_text("x")  # e.g. a read-only or missing folder

    return [Command("generate", "draw samples", add_generate, generate)]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["generate", "--seed", "-1"], "argument --seed: must be at least 0, got -1"),
        (["generate", "--seed", "1e23"], "argument --seed: expected an integer, got '1e23'"),
        (["generate", "--seed", str(2**32)], "must be at most 4294967295"),
        (["generate", "--count", "0"], "argument --count: must be at least 1, got 0"),
        (["generate", "--count", "5000"], "must be at most 100, got 5000 (pass --max-count N)"),
        (["generate", "--noise", "nan"], "argument --noise: must be a finite number, got nan"),
        (["generate", "--noise", "inf"], "must be a finite number"),
        (["generate", "--noise", "-5"], "argument --noise: must be >= 0, got -5"),
        (["generate", "--nope"], "unrecognized arguments: --nope"),
        (["explode"], "invalid choice: 'explode'"),
    ],
)
def test_command_line_rejects_bad_numbers_in_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from difforge.core.cli import command_line

    main = command_line("difforge-toy", "a toy", _toy_commands({}))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: difforge-toy")
    assert message in err


def test_command_line_shared_flags_and_os_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from difforge.core.cli import command_line

    seen: dict = {}
    main = command_line("difforge-toy", "a toy", _toy_commands(seen))
    assert main(["generate", "--quiet", "--seed", "5"]) == 0
    assert seen["argv"] == ["difforge-toy", "generate", "--quiet", "--seed", "5"]
    assert (
        seen["seed"] == 5 and seen["device"] == "auto" and seen["quiet"] and not seen["overwrite"]
    )
    assert main(["generate", "--out", str(tmp_path / "missing" / "x.txt")]) == 1
    err = capsys.readouterr().err
    assert err == f"error: {tmp_path / 'missing' / 'x.txt'}: No such file or directory\n"


def test_every_subcommand_help_has_the_shared_flags(capsys: pytest.CaptureFixture[str]) -> None:
    from difforge.core.cli import command_line

    assert command_line("difforge-toy", "a toy", _toy_commands({}))(["generate", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # help text wraps with the terminal width
    for flag in ("--seed", "--device", "--overwrite", "--quiet", "--verbose"):
        assert flag in out
    assert "(default: auto)" in out and "(default: 1)" in out and "(default: 0)" in out
    assert "default: None" not in out and "default: False" not in out


def test_presets_no_config_is_the_default_preset(tmp_path: Path) -> None:
    from difforge.core.cli import load_preset
    from difforge.core.errors import ConfigError

    (tmp_path / "default.yaml").write_text("steps: 50\nlr: 2e-3\n")
    (tmp_path / "tiny.yaml").write_text("steps: 2\n")
    assert load_preset(TrainConfig, tmp_path, None) == load_preset(TrainConfig, tmp_path, "default")
    assert load_preset(TrainConfig, tmp_path, None, ["steps=7"]).lr == 2e-3
    assert load_preset(TrainConfig, tmp_path, "tiny").steps == 2
    file = tmp_path / "mine.yaml"
    file.write_text("steps: 9\n")
    assert load_preset(TrainConfig, tmp_path, str(file)).steps == 9
    with pytest.raises(ConfigError, match="no preset 'huge' \\(presets: default, mine, tiny"):
        load_preset(TrainConfig, tmp_path, "huge")
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, tmp_path)
    args = parser.parse_args(["steps=3"])
    assert config_from_args(TrainConfig, args) == load_preset(
        TrainConfig, tmp_path, "default", ["steps=3"]
    )


def test_run_cli_one_line_for_memory_and_recursion(capsys: pytest.CaptureFixture[str]) -> None:
    @run_cli
    def too_big() -> None:
        raise MemoryError

    @run_cli
    def too_deep() -> None:
        raise RecursionError("maximum recursion depth exceeded")

    @run_cli
    def gpu_too_small() -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")

    @run_cli
    def a_bug() -> None:
        raise RuntimeError("shape mismatch")

    assert too_big() == 1 and too_deep() == 1 and gpu_too_small() == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "error: out of memory: ask for a smaller size (fewer samples, a smaller batch)",
        "error: the input is nested too deeply to read",
        "error: out of GPU memory: ask for a smaller size (fewer samples, a smaller batch)",
    ]
    with pytest.raises(RuntimeError, match="shape mismatch"):
        a_bug()


def test_a_command_named_by_string_imports_its_module_only_when_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from difforge.core.cli import Command, command_line

    (tmp_path / "heavy_toy_module.py").write_text("def run(args):\n    print('ran', args.n)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    command = Command("go", "go", lambda p: p.add_argument("--n", type=int), "heavy_toy_module:run")
    main = command_line("difforge-toy", "a toy", [command])
    assert main(["go", "--help"]) == 0
    assert "heavy_toy_module" not in sys.modules
    assert main(["go", "--n", "3"]) == 0
    assert capsys.readouterr().out.endswith("ran 3\n")


def test_deeply_nested_metadata_is_one_line(tmp_path: Path) -> None:
    from difforge.core.errors import CheckpointError
    from difforge.core.pretrained import read_json_object

    path = tmp_path / "config.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CheckpointError, match="nested too deeply"):
        read_json_object(path)
