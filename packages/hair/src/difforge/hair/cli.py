"""``difforge-hair``: procedural hair data, rendering, export, baselines and their evaluation.

One subparser per command; each is ``add_<command>(subparsers)`` plus a ``_run_<command>(args)``,
so model commands (train-codec, train, generate, evaluate) slot in beside these.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from difforge.core.cli import progress, run_cli
from difforge.core.errors import UserError
from difforge.core.io import atomic_open, write_json
from difforge.hair.data.dataset import (
    SampleConfig,
    build_dataset,
    load_sample,
    load_style_picture,
    training_seeds,
)
from difforge.hair.data.groom import Groom, generate_groom
from difforge.hair.data.images import load_conditioning_image
from difforge.hair.data.styles import FAMILIES, sample_style
from difforge.hair.evaluate import (
    DEFAULT_EVAL_POINTS,
    EvalConfig,
    MeanGroomBaseline,
    RetrievalBaseline,
    evaluate_baselines,
    results_table,
)
from difforge.hair.export import read_strands, write_npz, write_obj, write_ply, write_usd
from difforge.hair.render import Appearance, render_views, save_png, side_by_side

Runner = Callable[[argparse.Namespace], None]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"seed {text} must be >= 0")
    return value


def _add_sample_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--strands", type=_positive_int, default=10_000, help="root candidates at full density"
    )
    parser.add_argument("--points", type=_positive_int, default=64, help="points per strand (>= 2)")
    parser.add_argument(
        "--image-size", type=_positive_int, default=128, help="conditioning picture side (px)"
    )


def _sample_config(args: argparse.Namespace) -> SampleConfig:
    if args.points < 2 or args.image_size < 16:
        raise UserError("--points must be >= 2 and --image-size >= 16")
    return SampleConfig(n_strands=args.strands, n_points=args.points, image_size=args.image_size)


def _add_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="groom as PLY polylines (.ply)")
    parser.add_argument("--obj", type=Path, help="also write OBJ polylines")
    parser.add_argument("--npz", type=Path, help="also write .npz (points, root_uv)")
    parser.add_argument("--usd", type=Path, help="also write USD BasisCurves (.usda/.usdc/.usd)")
    parser.add_argument(
        "--png", type=Path, help="also write a PNG of renders (input picture first)"
    )
    parser.add_argument("--up-axis", choices=("y", "z"), default="y", help="up axis of PLY/OBJ/USD")


def write_groom_outputs(
    groom: Groom,
    args: argparse.Namespace,
    input_image: np.ndarray | None = None,
    appearance: Appearance = Appearance(),  # noqa: B008 (frozen)
) -> list[Path]:
    """Write every output the ``_add_output_arguments`` flags ask for; returns the paths written."""
    if args.out.suffix.lower() != ".ply":
        raise UserError(f"--out {args.out}: the groom is written as PLY, use a .ply name")
    written = [args.out]
    write_ply(args.out, groom.points, up_axis=args.up_axis)
    if args.obj:
        write_obj(args.obj, groom.points, up_axis=args.up_axis)
        written.append(args.obj)
    if args.npz:
        write_npz(args.npz, groom.points, groom.root_uv)
        written.append(args.npz)
    if args.usd:
        write_usd(args.usd, groom.points, up_axis=args.up_axis)
        written.append(args.usd)
    if args.png:
        views = render_views(
            groom.points, ("front", "three_quarter", "left", "back"), 256, appearance
        )
        tiles = [view.rgb for view in views.values()]
        if input_image is not None:
            tiles.insert(
                0,
                np.asarray(
                    Image.fromarray(input_image).resize((256, 256), Image.Resampling.LANCZOS)
                ),
            )
        save_png(args.png, side_by_side(tiles))
        written.append(args.png)
    return written


# ---- dataset ---------------------------------------------------------------------------------


def add_dataset(subparsers: argparse._SubParsersAction) -> Runner:
    parser = subparsers.add_parser(
        "dataset", help="generate N procedural styles: renders, strands, density maps, parameters"
    )
    parser.add_argument("--n", type=_positive_int, required=True, help="number of styles")
    parser.add_argument(
        "--seed", type=_seed, default=0, help="first seed (styles use seed .. seed+n-1)"
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    _add_sample_arguments(parser)
    return _run_dataset


def _run_dataset(args: argparse.Namespace) -> None:
    config = _sample_config(args)
    seeds = training_seeds(args.n, args.seed)
    with progress(total=len(seeds), desc="styles") as bar:
        folders = build_dataset(
            args.out, seeds, config, progress=lambda _count, _sample: bar.update()
        )
    print(f"wrote {len(folders)} styles to {args.out}")


# ---- groom -----------------------------------------------------------------------------------


def add_groom(subparsers: argparse._SubParsersAction) -> Runner:
    parser = subparsers.add_parser(
        "groom", help="one procedural groom to PLY/OBJ/NPZ/USD and a PNG"
    )
    parser.add_argument(
        "--family", choices=list(FAMILIES), help="style family (default: from the seed)"
    )
    parser.add_argument("--seed", type=_seed, default=0)
    parser.add_argument(
        "--strands", type=_positive_int, default=10_000, help="root candidates at full density"
    )
    parser.add_argument("--points", type=_positive_int, default=64, help="points per strand (>= 2)")
    _add_output_arguments(parser)
    return _run_groom


def _run_groom(args: argparse.Namespace) -> None:
    style = sample_style(args.seed, args.family)
    groom = generate_groom(style, args.strands, args.points)
    written = write_groom_outputs(groom, args, appearance=Appearance.from_style(style))
    print(
        f"{style.family} (seed {style.seed}): {groom.n_strands} strands -> {', '.join(map(str, written))}"
    )


# ---- render ----------------------------------------------------------------------------------


def add_render(subparsers: argparse._SubParsersAction) -> Runner:
    parser = subparsers.add_parser(
        "render", help="render a groom file (.npz/.ply/.obj/.usd*) to a PNG"
    )
    parser.add_argument("groom", type=Path, help="strand file")
    parser.add_argument("--out", type=Path, required=True, help="PNG with several views")
    parser.add_argument("--size", type=_positive_int, default=256, help="side of each view (px)")
    return _run_render


def _run_render(args: argparse.Namespace) -> None:
    points = read_strands(args.groom)
    if args.size < 16:
        raise UserError("--size must be at least 16")
    views = render_views(points, size=args.size)
    save_png(args.out, side_by_side([view.rgb for view in views.values()]))
    print(f"rendered {len(points)} strands ({', '.join(views)}) -> {args.out}")


# ---- baseline --------------------------------------------------------------------------------


def add_baseline(subparsers: argparse._SubParsersAction) -> Runner:
    parser = subparsers.add_parser(
        "baseline",
        help="groom from a picture with a baseline (mean groom or retrieval) fitted on a dataset",
    )
    parser.add_argument(
        "--image", type=Path, required=True, help="front picture of a head (PNG/JPEG/...)"
    )
    parser.add_argument(
        "--dataset", type=Path, required=True, help="folder written by `difforge-hair dataset`"
    )
    parser.add_argument("--method", choices=("retrieval", "mean"), default="retrieval")
    _add_output_arguments(parser)
    return _run_baseline


def _run_baseline(args: argparse.Namespace) -> None:
    folders = sorted(args.dataset.glob("style_*")) if args.dataset.is_dir() else []
    if not folders:
        raise UserError(
            f"{args.dataset}: no style folders (build one with `difforge-hair dataset`)"
        )
    image, notes = load_conditioning_image(args.image)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if args.method == "mean":
        mean = MeanGroomBaseline()
        for folder in progress(folders, desc="dataset"):
            mean.add(load_sample(folder)[1])
        groom = mean(image)
    else:
        retrieval, folder_of = RetrievalBaseline(), {}
        for folder in progress(folders, desc="dataset"):
            style, picture = load_style_picture(folder)
            retrieval.add(style.seed, picture)
            folder_of[style.seed] = folder
        groom = load_sample(folder_of[retrieval.nearest_seed(image)])[1]
    written = write_groom_outputs(groom, args, input_image=image)
    print(f"{args.method}: {groom.n_strands} strands -> {', '.join(map(str, written))}")


# ---- evaluate-baselines ----------------------------------------------------------------------


def add_evaluate_baselines(subparsers: argparse._SubParsersAction) -> Runner:
    parser = subparsers.add_parser(
        "evaluate-baselines",
        help="fit the mean-groom and retrieval baselines and score them on held-out styles",
    )
    parser.add_argument("--train", type=_positive_int, default=280, help="training styles")
    parser.add_argument("--test", type=_positive_int, default=56, help="held-out styles")
    parser.add_argument("--seed", type=_seed, default=0, help="first training seed")
    parser.add_argument(
        "--eval-points", type=_positive_int, default=DEFAULT_EVAL_POINTS, help="points per groom"
    )
    parser.add_argument("--out", type=Path, required=True, help="JSON report")
    parser.add_argument("--md", type=Path, help="also write the summary table as Markdown")
    parser.add_argument(
        "--workers", type=_positive_int, default=1, help="processes (results do not depend on it)"
    )
    _add_sample_arguments(parser)
    return _run_evaluate_baselines


def _run_evaluate_baselines(args: argparse.Namespace) -> None:
    config = EvalConfig(sample=_sample_config(args), n_eval_points=args.eval_points)
    training_seeds(args.train, args.seed)  # validate before the long run
    bars = {}

    def report(stage: str, count: int) -> None:
        if stage not in bars:
            bars[stage] = progress(total=args.train if stage == "train" else args.test, desc=stage)
        bars[stage].update(count - bars[stage].n)

    reports = evaluate_baselines(
        args.train, args.test, args.seed, config, args.workers, progress=report
    )
    for bar in bars.values():
        bar.close()
    write_json(args.out, reports)
    table = results_table(reports)
    if args.md:
        with atomic_open(args.md, "w", encoding="utf-8") as fh:
            fh.write(table)
    print(table, end="")


# ---- entry point -----------------------------------------------------------------------------

COMMANDS = (add_dataset, add_groom, add_render, add_baseline, add_evaluate_baselines)


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Runner]]:
    parser = argparse.ArgumentParser(prog="difforge-hair", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    runners = {}
    for add in COMMANDS:
        before = set(subparsers.choices)
        runner = add(subparsers)
        (name,) = set(subparsers.choices) - before
        runners[name] = runner
    return parser, runners


@run_cli
def main(argv: list[str] | None = None) -> int:
    parser, runners = build_parser()
    args = parser.parse_args(argv)
    runners[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
