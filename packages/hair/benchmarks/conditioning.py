"""Does a trained model use its picture? Denoising errors with the right, the null and another
style's picture at several noise levels, and how close sampled textures come to their own style.

Usage: python packages/hair/benchmarks/conditioning.py --model MODEL_DIR [--n 14] [--workers 1]
       [--root-candidates 10000] [--device auto] [--split held-out|train] [--out FILE.json] [--md FILE.md]
Held-out styles (one per family for --n 14) are encoded by the model's own codec into their
ground-truth scalp textures (:func:`difforge.hair.sample.conditioning_check` explains the numbers).
``--split train`` uses the first training seeds instead: the gap between the two splits' denoising
errors is the model's generalisation gap.
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from difforge.core.cli import resolve_device
from difforge.core.io import atomic_open, write_json
from difforge.hair.data.dataset import SampleConfig, held_out_seeds, training_seeds
from difforge.hair.model import HairModel
from difforge.hair.sample import HairGenerator, conditioning_check, conditioning_table
from difforge.hair.train import encode_styles, procedural_record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model folder (or `default`)")
    parser.add_argument("--n", type=int, default=14, help="held-out styles (at least 2)")
    parser.add_argument(
        "--root-candidates", type=int, default=10_000, help="as the training styles"
    )
    parser.add_argument("--points", type=int, help="points per strand (default: the codec's)")
    parser.add_argument("--image-size", type=int, help="picture side (default: the model's)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--split", choices=("held-out", "train"), default="held-out")
    parser.add_argument("--out", type=Path, help="JSON report")
    parser.add_argument("--md", type=Path, help="append the table to this Markdown file")
    args = parser.parse_args()
    model = HairModel.load(args.model)
    image_size = model.diffusion.config.image_size
    if args.image_size not in (None, image_size):
        raise SystemExit(f"error: the model takes {image_size}px pictures")
    n_points = model.codec.config.n_points
    config = SampleConfig(args.root_candidates, args.points or n_points, image_size)
    seeds = (held_out_seeds if args.split == "held-out" else training_seeds)(max(args.n, 2))
    tasks = [(seed, config, n_points) for seed in seeds]
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
            records = list(pool.map(procedural_record, tasks))
    else:
        records = list(map(procedural_record, tasks))
    device = resolve_device(args.device)
    textures, images, _ = encode_styles(
        model.codec.to(device), iter(records), model.diffusion.config.resolution, device
    )
    report = conditioning_check(HairGenerator(model, device), textures, images.numpy())
    report["styles"] = [record.family for record in records]
    report["split"] = args.split
    title = f"{len(records)} {'held-out' if args.split == 'held-out' else 'training'} styles"
    table = f"## Conditioning check ({title})\n\n" + conditioning_table(report)
    if args.out:
        write_json(args.out, report)
    if args.md:
        previous = args.md.read_text(encoding="utf-8") if args.md.is_file() else ""
        with atomic_open(args.md, "w", encoding="utf-8") as fh:
            fh.write(previous + "\n" + table)
    print(table, end="")


if __name__ == "__main__":
    main()
