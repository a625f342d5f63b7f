"""Helpers for the packages' tests: run a command as a user would, interrupt it, compare folders.

Every package tests its commands in a separate interpreter, exactly as a user starts them, so
that what is checked is what a user sees (stdout, stderr, exit code, files left on disk).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = [
    "check_recipe_launch",
    "imported_by",
    "interrupt_command",
    "run_command",
    "run_launch",
    "tree_snapshot",
]


def run_command(
    module: str, args: Sequence[str | os.PathLike[str]], timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """``python -m module args...`` to its end; stdout/stderr captured as text."""
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def run_launch(
    module: str, args: Sequence[str | os.PathLike[str]], processes: int = 2, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python -m module args...`` as ``processes`` processes of one ``torchrun`` launch (gloo on
    a CPU-only machine): what ``accelerate launch`` does on several GPUs, testable on a CPU."""
    return run_command(
        "torch.distributed.run",
        ["--standalone", "--nproc_per_node", str(processes), "-m", module, *args],
        timeout=timeout,
    )


def check_recipe_launch(module: str, out: Path) -> None:
    """A package's ``tiny`` recipe as two processes of one launch (:func:`run_launch`) ends well:
    no traceback, every stage done, each stage announced once (by the main process)."""
    done = run_launch(module, ["tiny", "--out", out, "--device", "cpu"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    stages = sorted(p for p in out.iterdir() if p.is_dir())
    assert stages and all((stage / ".done").is_file() for stage in stages)
    assert done.stdout.count("running into") == len(stages)


def imported_by(module: str, candidates: Sequence[str]) -> list[str]:
    """Which of ``candidates`` a fresh interpreter has imported after ``import module``."""
    check = (
        f"import json, sys, {module}; "
        f"print(json.dumps(sorted(m for m in {list(candidates)!r} if m in sys.modules)))"
    )
    loaded = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    return json.loads(loaded.stdout)


def interrupt_command(
    module: str,
    args: Sequence[str | os.PathLike[str]],
    ready: Callable[[], bool],
    timeout: float = 300,
    *,
    group: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Start ``python -m module args...``, press Ctrl-C (SIGINT) as soon as ``ready()`` is true
    (e.g. once its output folder appears), and wait for it to end. ``group=True`` sends it to
    the whole process group, worker processes included, as a terminal does."""
    process = subprocess.Popen(
        [sys.executable, "-m", module, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=group,
    )
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            out, err = process.communicate()
            raise AssertionError(f"the command ended before it was ready: {err[-2000:]}")
        time.sleep(0.02)
    if group:
        os.killpg(process.pid, signal.SIGINT)
    else:
        process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def tree_snapshot(folder: str | os.PathLike[str]) -> dict[str, str]:
    """Every file under ``folder`` (relative path -> sha256): equal snapshots, untouched folder."""
    root = Path(folder)
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
