"""Gathers what ``scripts/gpu_extra.sh`` has done so far into ``results.json`` and ``results.md``.

    python packages/traj/benchmarks/gpu_extra_report.py --work WORK --out OUT --card NAME

Run after every stage (so a run stopped by a time limit still returns every finished stage).
Reads from WORK: ``stages.tsv`` (name, exit status, seconds, limit per line; 124/137 = stopped by
its time limit), ``scaling.json`` (benchmarks/scaling.py), the bench folders ``berlin``,
``berlin_hoser`` and ``zero_shot`` (``bench.json`` of ``difforge-traj bench``, rewritten there
after every method) and the trained model folders ``berlin_model`` and ``bike_model``
(``config.json``: steps, final losses).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from scaling import markdown as scaling_markdown

from difforge.core.io import atomic_open, write_json
from difforge.traj.bench import markdown_report

BENCHES = {
    "berlin": "Second city: berlin_adlershof_drive (shortest path, Markov, TrajDLM)",
    "berlin_hoser": "Second city: berlin_adlershof_drive (HOSER-style beam search)",
    "zero_shot": "Zero-shot mode transfer: helsinki_bike_on_drive test "
    "(`trajdlm` = the shipped car-trained default, never trained on bicycles)",
}
MODELS = ("berlin_model", "bike_model")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def read_stages(work: Path) -> list[dict[str, Any]]:
    stages = []
    path = work / "stages.tsv"
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    for line in lines:
        name, rc, seconds, limit = line.split("\t")
        status = {"0": "done", "124": "time limit", "137": "time limit (killed)"}.get(rc, "failed")
        stages.append(
            {
                "stage": name,
                "exit": int(rc),
                "status": status,
                "seconds": int(seconds),
                "limit_s": int(limit),
            }
        )
    return stages


def model_summary(model_dir: Path) -> dict[str, Any] | None:
    meta = _read_json(model_dir / "config.json")
    if meta is None:
        return None
    training = meta.get("training", {})
    return {
        "dataset": meta.get("dataset", {}).get("name"),
        "steps": training.get("steps"),
        "batch_size": training.get("batch_size"),
        "parameters": training.get("parameters"),
        "final_logs": training.get("final_logs"),
        "block_size": meta.get("model", {}).get("block_size"),
    }


def collect(work: Path, card: str, command: str) -> dict[str, Any]:
    return {
        "card": card,
        "date": dt.date.today().isoformat(),
        "command": command,
        "stages": read_stages(work),
        "models": {name: model_summary(work / name) for name in MODELS},
        "scaling": _read_json(work / "scaling.json"),
        **{name: _read_json(work / name / "bench.json") for name in BENCHES},
    }


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# difforge-traj GPU extras: scaling, second city, zero-shot bicycles",
        "",
        f"- card: {results['card']}; date: {results['date']}",
        f"- command: `{results['command']}`",
        "",
        "| stage | status | seconds | limit |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {s['stage']} | {s['status']} (exit {s['exit']}) | {s['seconds']} | {s['limit_s']} |"
        for s in results["stages"]
    ]
    trained = {k: v for k, v in results["models"].items() if v}
    if trained:
        lines += ["", "## Models trained here", ""]
        for name, info in trained.items():
            loss = (info.get("final_logs") or {}).get("loss")
            lines.append(
                f"- {name}: {info['dataset']}, {info['steps']} steps of batch {info['batch_size']}, "
                f"{(info['parameters'] or 0) / 1e6:.2f} M parameters, block size "
                f"{info['block_size']}, final loss {loss if loss is None else f'{loss:.4f}'}"
            )
    if results["scaling"]:
        body = scaling_markdown(results["scaling"]).split("\n", 1)[1]
        lines += ["", "## Scaling (benchmarks/scaling.py)", body.rstrip()]
    for name, title in BENCHES.items():
        if results.get(name):
            body = markdown_report(results[name], results[name].get("command"))
            body = body.split("\n", 1)[1].strip().replace("\n## ", "\n### ")
            lines += ["", f"## {title}", "", body]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--card", required=True)
    parser.add_argument("--command", default="bash packages/traj/scripts/gpu_extra.sh")
    args = parser.parse_args(argv)
    results = collect(args.work, args.card, args.command)
    write_json(args.out / "results.json", results)
    with atomic_open(args.out / "results.md", "w", encoding="utf-8") as fh:
        fh.write(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
