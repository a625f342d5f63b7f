"""``difforge-hair``: 3D hair strands from one picture: data, training, generation, evaluation.

One subparser per command; each is ``add_<command>(subparsers)`` plus a ``_run_<command>(args)``.
The model commands (train-codec, train, generate, evaluate) import the model modules (and
diffusers) only when they run.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path

from difforge.core.cli import add_config_arguments, progress, resolve_device, run_cli
from difforge.core.errors import UserError
from difforge.core.io import atomic_open, write_json
from difforge.hair.baselines import MeanGroomBaseline, RetrievalBaseline, evaluate_baselines
from difforge.hair.cli_arguments import (
    add_data_argument,
    add_evaluation_arguments,
    add_model_arguments,
    add_output_arguments,
    add_root_candidates_argument,
    add_sample_arguments,
    add_train_data_argument,
    model_default,
    positive_int,
    sample_config,
    seed_number,
    strand_count,
    write_groom_outputs,
)
from difforge.hair.data.dataset import (
    build_dataset,
    load_sample,
    load_style_picture,
    training_seeds,
)
from difforge.hair.data.groom import generate_groom
from difforge.hair.data.images import load_conditioning_image
from difforge.hair.data.styles import FAMILIES, sample_style
from difforge.hair.evaluate import (
    EvalConfig,
    evaluate_generator,
    results_table,
)
from difforge.hair.export import read_strands
from difforge.hair.render import Appearance, render_views, save_png, side_by_side

Runner = Callable[[argparse.Namespace], None]


# ---- dataset ---------------------------------------------------------------------------------


def add_dataset(subparsers: argparse._SubParsersAction) -> Runner:
    parser = subparsers.add_parser(
        "dataset", help="generate N procedural styles: renders, strands, density maps, parameters"
    )
    parser.add_argument("--n", type=positive_int, required=True, help="number of styles")
    parser.add_argument(
        "--seed", type=seed_number, default=0, help="first seed (styles use seed .. seed+n-1)"
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="processes (the styles do not depend on it)",
    )
    parser.add_argument(
        "--families",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        help="comma-separated style families: only the first N seeds from --seed on that have "
        "one of them (default: every seed, so every family alike)",
    )
    add_sample_arguments(parser)
    return _run_dataset


def _run_dataset(args: argparse.Namespace) -> None:
    config = sample_config(args)
    seeds = training_seeds(args.n, args.seed, args.families)
    with progress(total=len(seeds), desc="styles") as bar:
        folders = build_dataset(
            args.out,
            seeds,
            config,
            progress=lambda _count, _folder: bar.update(),
            workers=args.workers,
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
    parser.add_argument("--seed", type=seed_number, default=0)
    add_root_candidates_argument(parser)
    parser.add_argument("--points", type=positive_int, default=64, help="points per strand (>= 2)")
    add_output_arguments(parser)
    return _run_groom


def _run_groom(args: argparse.Namespace) -> None:
    style = sample_style(args.seed, args.family)
    groom = generate_groom(style, args.root_candidates, args.points)
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
    parser.add_argument("--size", type=positive_int, default=256, help="side of each view (px)")
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
    add_output_arguments(parser)
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
    parser.add_argument("--train", type=positive_int, default=280, help="training styles")
    parser.add_argument("--test", type=positive_int, default=56, help="held-out styles")
    parser.add_argument("--seed", type=seed_number, default=0, help="first training seed")
    add_train_data_argument(parser)
    add_evaluation_arguments(parser)
    return _run_evaluate_baselines


def _run_evaluate_baselines(args: argparse.Namespace) -> None:
    config = EvalConfig(sample=sample_config(args), n_eval_points=args.eval_points)
    training_seeds(args.train, args.seed)  # validate before the long run
    bars = {}

    def report(stage: str, count: int) -> None:
        if stage not in bars:
            bars[stage] = progress(total=args.train if stage == "train" else args.test, desc=stage)
        bars[stage].update(count - bars[stage].n)

    reports = evaluate_baselines(
        args.train,
        args.test,
        args.seed,
        config,
        args.workers,
        report,
        args.train_data,
        args.first_held_out,
    )
    for bar in bars.values():
        bar.close()
    write_json(args.out, reports)
    table = results_table(reports)
    if args.md:
        with atomic_open(args.md, "w", encoding="utf-8") as fh:
            fh.write(table)
    print(table, end="")


# ---- train-codec / train ---------------------------------------------------------------------


def add_train_codec(subparsers: argparse._SubParsersAction) -> Runner:
    parser = subparsers.add_parser("train-codec", help="train the strand codec (VAE)")
    add_data_argument(parser)
    parser.add_argument("--out", type=Path, required=True, help="codec folder to write")
    add_config_arguments(parser)
    return _run_train_codec


def _run_train_codec(args: argparse.Namespace) -> None:
    from difforge.core.train import process_state
    from difforge.hair.run_config import load_run_config
    from difforge.hair.train import train_codec

    config = load_run_config("codec", args.config, args.overrides)
    metrics = train_codec(args.data, args.out, config, args.run_dir)
    errors = metrics["held_out"]
    if process_state().is_main_process:  # once under torchrun
        print(
            f"codec -> {args.out}: held-out E_pos {errors['position_mm']:.2f} mm, "
            f"E_dir {errors['direction_deg']:.1f} deg, E_curv {errors['curvature_mm']:.3f} mm"
        )


def add_train(subparsers: argparse._SubParsersAction) -> Runner:
    parser = subparsers.add_parser(
        "train", help="train the image-conditioned scalp-texture diffusion model"
    )
    add_data_argument(parser)
    parser.add_argument("--codec", type=Path, help="codec folder from `train-codec`")
    parser.add_argument(
        "--init",
        help="continue from this model folder (or `default`): its codec, DiT weights and "
        "sampling settings, with a fresh schedule (instead of --codec)",
    )
    parser.add_argument("--out", type=Path, required=True, help="model folder to write")
    add_config_arguments(parser)
    return _run_train


def _run_train(args: argparse.Namespace) -> None:
    from difforge.core.train import process_state
    from difforge.hair.run_config import load_run_config
    from difforge.hair.train import train_diffusion

    config = load_run_config("diffusion", args.config, args.overrides)
    model = train_diffusion(args.data, args.codec, args.out, config, args.run_dir, args.init)
    if process_state().is_main_process:  # once under torchrun
        print(f"model ({model.info['training']['styles']} styles) -> {args.out}")


# ---- generate --------------------------------------------------------------------------------


def _generator(args: argparse.Namespace, seed: int = 0, model=None):  # -> HairGenerator
    """The generator of ``--model`` on ``--device`` with ``--steps``, ``--guidance``,
    ``--min-density``, ``--smooth``, ``--project-head-range``, ``--ensemble`` and ``--bf16`` applied
    (``model``: an already loaded HairModel). Model modules are imported here, lazily."""
    from difforge.hair.model import HairModel
    from difforge.hair.sample import HairGenerator

    device = resolve_device(args.device)
    if args.guidance is not None and args.guidance < 0:
        raise UserError("--guidance must be >= 0")
    if args.min_density is not None and not 0 <= args.min_density < 1:
        raise UserError("--min-density must be in [0, 1)")
    if args.smooth is not None and args.smooth < 0:
        raise UserError("--smooth must be >= 0")
    model = model or HairModel.load(args.model)
    given = {  # SamplingConfig field: its flag (None: not given, the model's setting stays)
        "steps": args.steps,
        "guidance_scale": args.guidance,
        "min_density": args.min_density,
        "latent_smoothing": args.smooth,
        "project_to_head_range": args.project_head_range,
        "ensemble": args.ensemble,
        "bf16": args.bf16,
    }
    sampling = dataclasses.replace(
        model.sampling, **{name: value for name, value in given.items() if value is not None}
    )
    return HairGenerator(model, device, sampling, seed=seed)


def add_generate(subparsers: argparse._SubParsersAction) -> Runner:
    parser = subparsers.add_parser("generate", help="a 3D groom from one front picture")
    parser.add_argument(
        "--image", type=Path, required=True, help="front picture of a head (PNG/JPEG/...)"
    )
    add_model_arguments(parser)
    count = parser.add_mutually_exclusive_group()
    count.add_argument(
        "--strands",
        type=strand_count,
        help="strands in the groom: exactly this many; the generated density decides where "
        "they grow (default: as many as the density keeps of --root-candidates)",
    )
    count.add_argument(
        "--root-candidates",
        type=strand_count,
        help="uniform root candidates, each kept with the generated density, as `groom` draws "
        f"them: the density decides how many strands grow too "
        f"({model_default('root_candidates')})",
    )
    parser.add_argument("--seed", type=seed_number, default=0)
    add_output_arguments(parser)
    return _run_generate


def _run_generate(args: argparse.Namespace) -> None:
    if args.out.suffix.lower() != ".ply":
        raise UserError(f"--out {args.out}: the groom is written as PLY, use a .ply name")
    generator = _generator(args, args.seed)
    image, notes = load_conditioning_image(args.image, generator.image_size)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    groom = generator.generate(image, args.strands, args.seed, args.root_candidates)
    written = write_groom_outputs(groom, args, input_image=image)
    print(f"generated {groom.n_strands} strands -> {', '.join(map(str, written))}")


# ---- evaluate --------------------------------------------------------------------------------


def add_evaluate(subparsers: argparse._SubParsersAction) -> Runner:
    parser = subparsers.add_parser(
        "evaluate",
        help="score a model on held-out styles beside the mean-groom and retrieval baselines",
    )
    add_model_arguments(parser)
    parser.add_argument("--n", type=positive_int, default=56, help="held-out styles")
    parser.add_argument(
        "--train",
        type=positive_int,
        help="baselines' training styles, seeds 0.. (default: as many as the model's)",
    )
    add_train_data_argument(parser)
    parser.add_argument("--no-baselines", action="store_true", help="score the model only")
    add_evaluation_arguments(parser)
    return _run_evaluate


def _run_evaluate(args: argparse.Namespace) -> None:
    from difforge.hair.model import HairModel

    config = EvalConfig(sample=sample_config(args), n_eval_points=args.eval_points)
    resolve_device(args.device)  # fail before the long run
    model = HairModel.load(args.model)  # on the CPU until the baselines are done
    image_size = model.diffusion.config.image_size
    if image_size != config.sample.image_size:
        raise UserError(f"the model takes {image_size}px pictures: pass --image-size {image_size}")
    n_train = args.train or int(model.info.get("training", {}).get("styles", 280))
    bars: dict[str, object] = {}

    def report(stage: str, count: int) -> None:
        if stage not in bars:
            bars[stage] = progress(total=n_train if stage == "train" else args.n, desc=stage)
        bars[stage].update(count - bars[stage].n)

    # Baselines first: their worker processes fork before this process holds any CUDA state.
    reports = (
        {}
        if args.no_baselines
        else evaluate_baselines(
            n_train, args.n, 0, config, args.workers, report, args.train_data, args.first_held_out
        )
    )
    generator = _generator(args, model=model)
    model_report = evaluate_generator(
        generator, args.n, config, args.workers, report, args.first_held_out
    )
    model_report["protocol"].update(
        model=str(args.model), sampling=dataclasses.asdict(generator.sampling)
    )
    reports = {"difforge_hair": model_report, **reports}
    for bar in bars.values():
        bar.close()
    write_json(args.out, reports)
    table = results_table(reports)
    if args.md:
        with atomic_open(args.md, "w", encoding="utf-8") as fh:
            fh.write(table)
    print(table, end="")


# ---- entry point -----------------------------------------------------------------------------

COMMANDS = (
    add_dataset,
    add_groom,
    add_render,
    add_baseline,
    add_evaluate_baselines,
    add_train_codec,
    add_train,
    add_generate,
    add_evaluate,
)


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
