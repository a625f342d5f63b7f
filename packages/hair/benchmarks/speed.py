"""Speed of the procedural generator, the renderer and the metrics on one CPU thread.

Usage: OMP_NUM_THREADS=1 python packages/hair/benchmarks/speed.py [--root-candidates 10000] [--points 64]
Prints a Markdown table (median seconds over the families' seeds 0..13).
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from difforge.hair.data.groom import generate_groom
from difforge.hair.data.styles import FAMILIES, sample_style
from difforge.hair.evaluate import compare_grooms
from difforge.hair.render import Appearance, render_groom


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root-candidates", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=64)
    parser.add_argument("--eval-points", type=int, default=100_000)
    args = parser.parse_args()
    generate_groom(sample_style(0), 500, 8)  # warm-up (imports, caches)
    rows, previous = [], None
    for seed, family in enumerate(FAMILIES):
        style = sample_style(seed, family)
        started = time.perf_counter()
        groom = generate_groom(style, args.root_candidates, args.points)
        generated = time.perf_counter()
        render_groom(groom.points, appearance=Appearance.from_style(style))
        rendered = time.perf_counter()
        if previous is not None:
            compare_grooms(groom.points, previous, args.eval_points)
        compared = time.perf_counter()
        rows.append(
            (
                family,
                groom.n_strands,
                generated - started,
                rendered - generated,
                compared - rendered,
            )
        )
        previous = groom.points
    print(
        f"CPU: {platform.processor() or platform.machine()}, one thread; {args.root_candidates} root candidates, {args.points} points"
    )
    print(
        "| family | strands | generate (s) | render 128² (s) | metrics vs previous (s) |\n|---|---|---|---|---|"
    )
    for family, count, gen, ren, cmp in rows:
        print(f"| {family} | {count} | {gen:.3f} | {ren:.3f} | {cmp:.3f} |")
    med = np.median(np.array([r[2:] for r in rows]), axis=0)
    print(
        f"| **median** | | **{med[0]:.3f}** | **{med[1]:.3f}** | **{np.median([r[4] for r in rows[1:]]):.3f}** |"
    )


if __name__ == "__main__":
    main()
