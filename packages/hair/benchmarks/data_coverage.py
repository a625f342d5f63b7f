"""How well the procedural training renders cover real portraits' hair silhouettes.

Usage: python packages/hair/benchmarks/data_coverage.py [--per-family 10] [--photos DIR]
       [--out FILE.json]

For each annotated real photo: its hand-made hair mask, brought into the renders' framing by the
photo front end's alignment (eyes, nose, mouth), against the hair masks of ``--per-family``
training samples of every family of a data setting; the score is the best mask IoU over them
(the silhouette of the nearest training render). Settings compared: the classic families with
frontal heads (what every model up to photo1 trained on) and the photo style set with heads
turned up to 35 degrees (the data of the recipe stage photo2). No model is involved: this
measures the training distribution, not a generator.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from difforge.core.io import write_json
from difforge.hair.data.dataset import SampleConfig, make_sample
from difforge.hair.data.images import load_photo
from difforge.hair.data.styles import STYLE_SETS
from difforge.hair.evaluate import mask_iou
from difforge.hair.photo import align_photo

sys.path.insert(0, str(Path(__file__).resolve().parent / "real_photos"))
from annotations import load_annotation, names
from collect import DEFAULT_CACHE, collect

SETTINGS = {
    "classic, frontal": SampleConfig(style_set="classic"),
    "photo set, frontal": SampleConfig(style_set="photo"),
    "photo set, yaw <= 35": SampleConfig(style_set="photo", max_yaw=35.0),
}


def training_masks(config: SampleConfig, per_family: int) -> tuple[np.ndarray, list[str]]:
    """The hair masks of the first ``per_family`` samples of every family, and their labels
    (family, head yaw)."""
    masks, labels = [], []
    for seed in range(per_family * len(STYLE_SETS[config.style_set])):
        sample = make_sample(seed, config)
        masks.append(sample.render.hair_mask)
        labels.append(f"{sample.style.family} {0.0 - sample.camera.yaw:+.0f}")
    return np.stack(masks), labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-family", type=int, default=10)
    parser.add_argument("--photos", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    paths = collect(args.photos)
    targets = {}
    for name in names():
        rgb, _ = load_photo(paths[name])
        aligned = align_photo(rgb, hair_mask=load_annotation(name)["hair_mask"])
        targets[name] = aligned.hair_mask
    report = {}
    for label, config in SETTINGS.items():
        masks, labels = training_masks(config, args.per_family)
        size = masks.shape[-1]
        best, nearest = {}, {}
        for name, target in targets.items():
            small = (
                cv2.resize(target.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
                >= 0.5
            )
            scores = [mask_iou(mask, small) for mask in masks]
            best[name], nearest[name] = max(scores), labels[int(np.argmax(scores))]
        best["mean"] = float(np.mean(list(best.values())))
        report[label] = {"n_renders": len(masks), "best_iou": best, "nearest": nearest}
        print(label, f"({len(masks)} renders):", {k: round(v, 3) for k, v in best.items()})
        print("  nearest (family, head yaw):", nearest)
    if args.out is not None:
        write_json(args.out, report)


if __name__ == "__main__":
    main()
