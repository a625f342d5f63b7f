"""The test helpers themselves: an interrupted command is reported in one line with code 130."""

from __future__ import annotations

import textwrap
from pathlib import Path

from difforge.core.testing import interrupt_command, run_command, tree_snapshot

SLOW_COMMAND = textwrap.dedent(
    """
    import argparse, time
    from pathlib import Path
    from difforge.core.cli import Command, command_line
    from difforge.core.io import atomic_open

    def add(p):
        p.add_argument("--out", type=Path, required=True)

    def run(args):
        with atomic_open(args.out) as fh:
            fh.write("half")
            args.out.with_suffix(".ready").touch()
            time.sleep(60)

    main = command_line("difforge-slow", "slow", [Command("write", "write slowly", add, run)])
    raise SystemExit(main())
    """
)


def test_ctrl_c_gives_one_line_exit_130_and_no_partial_file(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "slow_cli.py").write_text(SLOW_COMMAND)
    before = tree_snapshot(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    out = tmp_path / "out" / "result.txt"
    done = interrupt_command("slow_cli", ["write", "--out", out], out.with_suffix(".ready").exists)
    assert done.returncode == 130
    assert done.stderr == "error: interrupted\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["result.ready"]
    after = tree_snapshot(tmp_path)
    assert set(after) == set(before) | {"out/result.ready"}  # no temp file, no half result
    assert all(after[name] == digest for name, digest in before.items())
    bad = run_command("slow_cli", ["write"])
    assert bad.returncode == 2
    assert (
        bad.stderr.count("\n") == 1 and "the following arguments are required: --out" in bad.stderr
    )
