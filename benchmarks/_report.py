"""What every benchmark records beside its numbers: card, date, command, versions, commit."""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from difforge.core.io import atomic_open, write_json

RESULTS_DIR = Path(__file__).parent / "results"


def card_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    return f"CPU {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def git_commit() -> str:
    # A copied tree (e.g. on the GPU machine) has no .git: the caller can name the commit.
    if os.environ.get("DIFFORGE_COMMIT"):
        return os.environ["DIFFORGE_COMMIT"]
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def environment(device: str) -> dict[str, Any]:
    """The header fields of a report."""
    return {
        "card": card_name(device),
        "device": device,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "torch": torch.__version__,
        "commit": git_commit(),
    }


def header_lines(report: dict[str, Any]) -> list[str]:
    return [
        f"- card: {report['card']}",
        f"- date: {report['date']}",
        f"- command: `{report['command']}`",
        f"- torch {report['torch']}, commit {report['commit']}",
    ]


def write_report(out_dir: Path, stem: str, report: dict[str, Any], markdown: str) -> None:
    """Write ``stem.json`` and ``stem.md`` atomically and print the table."""
    write_json(out_dir / f"{stem}.json", report)
    with atomic_open(out_dir / f"{stem}.md", "w", encoding="utf-8") as fh:
        fh.write(markdown)
    print(markdown)
