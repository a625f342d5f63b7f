"""The arguments that several ``difforge-hair`` commands share: number types, the sample,
output, evaluation, data and model-sampling flags, and the writer of the output flags' files.

The sampling flags' --help gives the shipped model's saved settings, read from its
``config.json`` as JSON so that --help loads no model code.
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

import numpy as np

from difforge.core.errors import UserError
from difforge.hair.data.dataset import SampleConfig
from difforge.hair.data.groom import Groom
from difforge.hair.evaluate import DEFAULT_EVAL_POINTS
from difforge.hair.export import write_npz, write_obj, write_ply, write_usd
from difforge.hair.render import Appearance, contact_sheet, save_png


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


# The most strands (or root candidates) a command takes: 64-point strands of this many are about
# 1.5 GB of float32 points. HairPipeline and generate_groom in Python have no such limit.
MAX_STRANDS = 2_000_000


def strand_count(text: str) -> int:
    """A strand or root-candidate count: a positive integer up to :data:`MAX_STRANDS`."""
    value = positive_int(text)
    if value > MAX_STRANDS:
        raise argparse.ArgumentTypeError(
            f"{text} is over the command's limit of {MAX_STRANDS:,} (about 1.5 GB of points); "
            "for more, call difforge.hair.HairPipeline from Python"
        )
    return value


def seed_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"seed {text} must be >= 0")
    return value


def add_root_candidates_argument(parser: argparse.ArgumentParser) -> None:
    """``--root-candidates``, the procedural generator's strand budget; ``--strands`` is its old
    name, still accepted but no longer shown: it read as a strand count, which it is not."""
    parser.add_argument(
        "--root-candidates",
        type=strand_count,
        default=10_000,
        help="uniform root candidates, each kept with the style's density map, so the density "
        "decides how many strands grow (a full head keeps about 60 %%; default: 10000)",
    )
    parser.add_argument(
        "--strands", dest="root_candidates", type=strand_count, help=argparse.SUPPRESS
    )


def add_sample_arguments(parser: argparse.ArgumentParser) -> None:
    add_root_candidates_argument(parser)
    parser.add_argument("--points", type=positive_int, default=64, help="points per strand (>= 2)")
    parser.add_argument(
        "--image-size", type=positive_int, default=128, help="conditioning picture side (px)"
    )


def sample_config(args: argparse.Namespace) -> SampleConfig:
    if args.points < 2 or args.image_size < 16:
        raise UserError("--points must be >= 2 and --image-size >= 16")
    return SampleConfig(
        n_strands=args.root_candidates, n_points=args.points, image_size=args.image_size
    )


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="groom as PLY polylines (.ply)")
    parser.add_argument("--obj", type=Path, help="also write OBJ polylines")
    parser.add_argument("--npz", type=Path, help="also write .npz (points, root_uv)")
    parser.add_argument("--usd", type=Path, help="also write USD BasisCurves (.usda/.usdc/.usd)")
    parser.add_argument(
        "--png", type=Path, help="also write a PNG of renders (input picture first)"
    )
    parser.add_argument("--up-axis", choices=("y", "z"), default="y", help="up axis of PLY/OBJ/USD")


def add_evaluation_arguments(parser: argparse.ArgumentParser) -> None:
    """What ``evaluate`` and ``evaluate-baselines`` share: points, reports, workers, samples."""
    parser.add_argument(
        "--eval-points", type=positive_int, default=DEFAULT_EVAL_POINTS, help="points per groom"
    )
    parser.add_argument("--out", type=Path, required=True, help="JSON report")
    parser.add_argument("--md", type=Path, help="also write the summary table as Markdown")
    parser.add_argument(
        "--workers", type=positive_int, default=1, help="processes (results do not depend on it)"
    )
    parser.add_argument(
        "--first-held-out",
        type=seed_number,
        default=0,
        help="score held-out styles from this one on: 0 (default) is the test set of RESULTS.md; "
        "tune settings on a later start (a validation set), never on the test set",
    )
    add_sample_arguments(parser)


def write_groom_outputs(
    groom: Groom,
    args: argparse.Namespace,
    input_image: np.ndarray | None = None,
    appearance: Appearance = Appearance(),  # noqa: B008 (frozen)
) -> list[Path]:
    """Write every output the ``add_output_arguments`` flags ask for; returns the paths written."""
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
        save_png(args.png, contact_sheet(groom.points, appearance, input_image))
        written.append(args.png)
    return written


def add_train_data_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--train-data",
        type=Path,
        help="fit the baselines on this `difforge-hair dataset` folder (all its styles, read from "
        "disk) instead of generating --train styles",
    )


def add_data_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        help="folder of `difforge-hair dataset` styles (searched recursively); without it, "
        "data.styles procedural styles are generated from data.seed on the fly",
    )
    parser.add_argument(
        "--run-dir", type=Path, help="checkpoints and logs (default: <out>-run; reruns resume)"
    )


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default="default", help="model folder from `train`, or `default`"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument(
        "--steps", type=positive_int, help=f"sampling steps ({model_default('steps')})"
    )
    parser.add_argument(
        "--guidance",
        type=float,
        help=f"classifier-free guidance w (0 = off; {model_default('guidance_scale')})",
    )
    parser.add_argument(
        "--min-density",
        type=float,
        help=f"no roots where the sampled density is below this ({model_default('min_density')})",
    )
    parser.add_argument(
        "--smooth",
        type=float,
        help="Gaussian blur of the sampled latent texture, in texels "
        f"(0 = off; {model_default('latent_smoothing')})",
    )
    parser.add_argument(
        "--project-head-range",
        action=argparse.BooleanOptionalAction,
        help="denoise to the training mean outside the DiT output head's range "
        f"({model_default('project_to_head_range')})",
    )
    parser.add_argument(
        "--ensemble",
        type=positive_int,
        help="textures sampled per picture and averaged before decoding "
        f"({model_default('ensemble')})",
    )
    parser.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        help="sample under bfloat16 autocast: faster on CPUs with AMX, slower on CPUs without "
        f"bfloat16 units ({model_default('bf16')})",
    )


# Read as JSON for --help: the model modules (torch, diffusers) load only when a command runs.
SHIPPED_SAMPLING = Path(__file__).resolve().parent / "weights" / "default" / "config.json"


@functools.cache
def _shipped_sampling() -> dict:
    try:
        return json.loads(SHIPPED_SAMPLING.read_text(encoding="utf-8"))["sampling"]
    except (OSError, ValueError, KeyError):
        return {}


def model_default(key: str) -> str:
    """--help's default of a sampling flag: the model folder's saved setting, and the shipped
    model's value of it."""
    value = _shipped_sampling().get(key)
    if value is None:
        return "default: the model folder's setting"
    shown = ("on" if value else "off") if isinstance(value, bool) else f"{value:g}"
    return f"default: the model folder's setting; the shipped model's is {shown}"
