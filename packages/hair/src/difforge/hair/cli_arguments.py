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

from difforge.core.cli import add_device_argument, float_arg, int_arg
from difforge.core.io import atomic_paths
from difforge.core.outputs import OutputPlan
from difforge.hair.data.dataset import MAX_HEAD_YAW, SampleConfig
from difforge.hair.data.groom import Groom
from difforge.hair.data.styles import STYLE_SETS
from difforge.hair.evaluate import DEFAULT_EVAL_POINTS
from difforge.hair.export import USD_SUFFIXES, write_npz, write_obj, write_ply, write_usd
from difforge.hair.export_tools import HEAD_MESH_SUFFIXES, write_head_mesh
from difforge.hair.render import Appearance, contact_sheet, save_png

# The most strands (or root candidates) a command takes: 64-point strands of this many are about
# 1.5 GB of float32 points. HairPipeline and generate_groom in Python have no such limit.
MAX_STRANDS = 2_000_000
MAX_WORKERS = 256
MAX_STYLES = 10_000_000  # dataset, training and held-out style counts
MAX_POINTS = 4096  # points per strand
MAX_IMAGE_SIZE = 2048  # conditioning picture and render side (px)
MAX_EVAL_POINTS = 10_000_000

strand_count = int_arg(
    1,
    MAX_STRANDS,
    raise_with="the command's limit, about 1.5 GB of points; for more, call "
    "difforge.hair.HairPipeline from Python",
)
style_count = int_arg(1, MAX_STYLES)
worker_count = int_arg(1, MAX_WORKERS)
points_per_strand = int_arg(2, MAX_POINTS)
picture_side = int_arg(16, MAX_IMAGE_SIZE)


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


def add_points_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--points", type=points_per_strand, default=64, help="points per strand")


def add_sample_arguments(parser: argparse.ArgumentParser) -> None:
    add_root_candidates_argument(parser)
    add_points_argument(parser)
    parser.add_argument(
        "--image-size", type=picture_side, default=128, help="conditioning picture side (px)"
    )


def add_style_set_arguments(parser: argparse.ArgumentParser) -> None:
    """The style set seeds draw their families from, and the renders' largest head turn."""
    parser.add_argument(
        "--style-set",
        choices=list(STYLE_SETS),
        default="classic",
        help="families the seeds draw from: classic, or photo (adds short_crop, short_layered "
        "and frizzy first)",
    )
    parser.add_argument(
        "--max-yaw",
        type=float_arg(0.0, MAX_HEAD_YAW),
        default=0.0,
        help=f"largest head turn of the renders in degrees, in [0, {MAX_HEAD_YAW:g}]; each seed "
        "draws its own (0: every head frontal)",
    )


def sample_config(args: argparse.Namespace) -> SampleConfig:
    return SampleConfig(
        n_strands=args.root_candidates, n_points=args.points, image_size=args.image_size
    )


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="groom as PLY polylines (.ply)")
    parser.add_argument("--obj", type=Path, help="also write OBJ polylines (.obj)")
    parser.add_argument("--npz", type=Path, help="also write .npz (points, root_uv)")
    parser.add_argument("--usd", type=Path, help="also write USD BasisCurves (.usda/.usdc/.usd)")
    parser.add_argument(
        "--png", type=Path, help="also write a PNG of renders (input picture first)"
    )
    parser.add_argument(
        "--head-mesh",
        type=Path,
        help="also write the head the strands grow on as a triangle mesh (.obj/.ply)",
    )
    parser.add_argument(
        "--up-axis", choices=("y", "z"), default="y", help="up axis of PLY/OBJ/USD/head mesh"
    )


_GROOM_OUTPUTS = {  # flag: accepted suffixes
    "out": (".ply",),
    "obj": (".obj",),
    "npz": (".npz",),
    "usd": USD_SUFFIXES,
    "png": (".png",),
    "head_mesh": HEAD_MESH_SUFFIXES,
}


def groom_output_plan(args: argparse.Namespace, plan: OutputPlan | None = None) -> OutputPlan:
    """``plan`` (or a new one) with the files of the ``add_output_arguments`` flags; the caller
    adds its inputs and calls ``check()`` before any work."""
    plan = plan or OutputPlan()
    for name, suffixes in _GROOM_OUTPUTS.items():
        plan.writes_file(f"--{name.replace('_', '-')}", getattr(args, name), suffixes)
    return plan


def write_groom_outputs(
    groom: Groom,
    args: argparse.Namespace,
    input_image: np.ndarray | list[np.ndarray] | None = None,
    appearance: Appearance = Appearance(),  # noqa: B008 (frozen)
) -> list[Path]:
    """Write every file the ``add_output_arguments`` flags ask for, all or none (checked first by
    :func:`groom_output_plan`); returns the paths written. ``input_image``: the picture(s) the
    PNG shows before the renders."""
    paths = [getattr(args, name) for name in _GROOM_OUTPUTS if getattr(args, name) is not None]
    with atomic_paths(paths) as temporary:
        tmp = dict(zip(paths, temporary))
        write_ply(tmp[args.out], groom.points, up_axis=args.up_axis)
        if args.obj:
            write_obj(tmp[args.obj], groom.points, up_axis=args.up_axis)
        if args.npz:
            write_npz(tmp[args.npz], groom.points, groom.root_uv)
        if args.usd:
            write_usd(tmp[args.usd], groom.points, up_axis=args.up_axis, suffix=args.usd.suffix)
        if args.png:
            save_png(tmp[args.png], contact_sheet(groom.points, appearance, input_image))
        if args.head_mesh:
            write_head_mesh(tmp[args.head_mesh], up_axis=args.up_axis, suffix=args.head_mesh.suffix)
    return paths


def add_evaluation_arguments(parser: argparse.ArgumentParser) -> None:
    """What ``evaluate`` and ``evaluate-baselines`` share: points, reports, workers, samples."""
    parser.add_argument(
        "--eval-points",
        type=int_arg(100, MAX_EVAL_POINTS),
        default=DEFAULT_EVAL_POINTS,
        help="points per groom",
    )
    parser.add_argument("--out", type=Path, required=True, help="JSON report (.json)")
    parser.add_argument("--md", type=Path, help="also write the summary table as Markdown (.md)")
    parser.add_argument(
        "--workers", type=worker_count, default=1, help="processes (results do not depend on it)"
    )
    parser.add_argument(
        "--first-held-out",
        type=int_arg(0, MAX_STYLES),
        default=0,
        help="score held-out styles from this one on: 0 (default) is the test set of RESULTS.md; "
        "tune settings on a later start (a validation set), never on the test set",
    )
    add_sample_arguments(parser)


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
    add_device_argument(parser)
    parser.add_argument(
        "--steps", type=int_arg(1, 10_000), help=f"sampling steps ({model_default('steps')})"
    )
    parser.add_argument(
        "--guidance",
        type=float_arg(0, 100),
        help=f"classifier-free guidance w (0 = off; {model_default('guidance_scale')})",
    )
    parser.add_argument(
        "--min-density",
        type=float_arg(0, 1, high_open=True),
        help=f"no roots where the sampled density is below this ({model_default('min_density')})",
    )
    parser.add_argument(
        "--smooth",
        type=float_arg(0, 64),
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
        type=int_arg(1, 256),
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
SHIPPED_MODEL = Path(__file__).resolve().parent / "weights" / "default"
SHIPPED_SAMPLING = SHIPPED_MODEL / "config.json"


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
