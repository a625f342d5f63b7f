"""Generate a scene with a trained model, expand it, and measure both: wall time of each call and
how much the expansion moved the existing surface (outside and inside the blending band), the SDF
disagreement at the seam and the open boundary left, for the staged blending ``expand`` uses and
for blending every block alike (expansion before stages).

    .venv/bin/python packages/scene/benchmarks/expansion.py --blocks 2x2 --direction +x

Writes ``results/<name>.json`` and ``.md`` (with date and command) beside this script.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
from _report import environment, header_lines, write_report

from difforge.scene.data.blocks import room_scene_layout
from difforge.scene.expansion import compare_expansion_blending
from difforge.scene.pipeline import ScenePipeline

SAMPLING_FLAGS = ("steps", "repaint_steps", "jump_length", "jump_n_sample", "grid_resolution")


def run(args: argparse.Namespace) -> dict[str, Any]:
    overrides = {k: getattr(args, k) for k in SAMPLING_FLAGS if getattr(args, k) is not None}
    pipe = ScenePipeline.from_pretrained(args.model)
    layout = room_scene_layout(args.seed, *args.blocks, pipe.model.sampling.stride)
    start = time.perf_counter()
    scene = pipe(layout, args.blocks, args.seed, **overrides)
    generate_s = time.perf_counter() - start
    start = time.perf_counter()
    grown = pipe.expand(scene, args.direction, **overrides)
    expand_s = time.perf_counter() - start
    added = [i for i in grown.latents if i not in scene.latents]
    blocks = grown.scene.blocks(pipe.generator(**overrides))
    old = [b for i, b in zip(grown.latents, blocks) if i in scene.latents]
    new = [b for i, b in zip(grown.latents, blocks) if i not in scene.latents]
    return {
        **environment("cpu"),
        "model": args.model,
        "blocks": list(args.blocks),
        "direction": args.direction,
        "seed": args.seed,
        "sampling": {**vars(pipe.model.sampling), **overrides, "schedule": None},
        "generate_s": generate_s,
        "expand_s": expand_s,
        "new_blocks": len(added),
        "generate_faces": len(scene.mesh.faces),
        "expand_faces": len(grown.mesh.faces),
        "seam": compare_expansion_blending(old, new),
    }


def markdown(report: dict[str, Any]) -> str:
    seam = report["seam"]
    rows = [
        "| blending | max move outside band (mm) | mean move outside (mm) | max move inside band "
        "(mm) | mean move inside (mm) | open boundary (m) |",
        "|---|---|---|---|---|---|",
    ]
    for key in ("staged", "all_blocks_alike"):
        r = seam[key]
        rows.append(
            f"| {key} | {r['max_move_outside_mm']:.3f} | {r['mean_move_outside_mm']:.3f} | "
            f"{r['max_move_inside_mm']:.1f} | {r['mean_move_inside_mm']:.1f} | "
            f"{r['open_boundary_m']:.3f} |"
        )
    return "\n".join(
        [
            "# Scene expansion",
            "",
            *header_lines(report),
            "",
            f"generate {report['blocks'][0]}x{report['blocks'][1]}: {report['generate_s']:.1f} s; "
            f"expand {report['direction']} ({report['new_blocks']} new blocks): "
            f"{report['expand_s']:.1f} s (in-process, after imports and model loading)",
            f"band {seam['band_m']} m; SDF disagreement of new vs existing blocks where both "
            f"cover (samples within 5 cm of a surface): {seam['sdf_disagreement_cm']:.2f} cm",
            "",
            *rows,
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--blocks", default="2x2")
    parser.add_argument("--direction", default="+x")
    parser.add_argument("--seed", type=int, default=0)
    for flag in SAMPLING_FLAGS:
        parser.add_argument("--" + flag.replace("_", "-"), dest=flag, type=int)
    parser.add_argument("--name", default="expansion_cpu")
    args = parser.parse_args()
    args.blocks = tuple(int(n) for n in args.blocks.split("x"))
    torch.set_grad_enabled(False)
    report = run(args)
    write_report(Path(__file__).parent / "results", args.name, report, markdown(report))


if __name__ == "__main__":
    main()
