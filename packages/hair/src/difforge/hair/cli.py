"""``difforge-hair``: 3D hair strands from one picture: data, training, generation, evaluation.

One :class:`~difforge.core.cli.Command` per subcommand, each an ``_add_<command>(parser)`` and a
``_run_<command>(args)``, on the core's ``command_line``; ``recipe`` runs
:func:`difforge.hair.recipe.run_named_recipe`. Every command checks its outputs against
its inputs (``OutputPlan``) before any work and writes them atomically, all or none. The model
commands (train-codec, train, generate, evaluate) import the model modules (and diffusers) only
when they run.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from difforge.core.cli import (
    Command,
    add_config_arguments,
    add_overwrite_argument,
    add_seed_argument,
    command_line,
    config_from_args,
    echo,
    int_arg,
    progress,
    resolve_device,
)
from difforge.core.cli import (
    build_parser as _core_build_parser,
)
from difforge.core.errors import UserError
from difforge.core.io import atomic_dir, atomic_paths, write_json
from difforge.core.outputs import OutputPlan
from difforge.core.recipe import recipe_command
from difforge.hair import CODEC_PRESETS, DIFFUSION_PRESETS, RECIPE_PRESETS
from difforge.hair.baselines import MeanGroomBaseline, RetrievalBaseline, evaluate_baselines
from difforge.hair.cli_arguments import (
    SHIPPED_MODEL,
    add_data_argument,
    add_evaluation_arguments,
    add_model_arguments,
    add_output_arguments,
    add_points_argument,
    add_root_candidates_argument,
    add_sample_arguments,
    add_style_set_arguments,
    add_train_data_argument,
    groom_output_plan,
    model_default,
    picture_side,
    points_per_strand,
    sample_config,
    strand_count,
    style_count,
    worker_count,
    write_groom_outputs,
)
from difforge.hair.data.dataset import (
    build_dataset,
    load_sample,
    load_style_picture,
    training_seeds,
)
from difforge.hair.data.groom import Groom, generate_groom
from difforge.hair.data.images import load_conditioning_image
from difforge.hair.data.styles import ALL_FAMILIES, sample_style
from difforge.hair.evaluate import (
    EvalConfig,
    evaluate_generator,
    results_table,
)
from difforge.hair.export import read_strands
from difforge.hair.render import Appearance, render_views, save_png, side_by_side


def _model_input(name: str) -> Path:
    """The folder a --model (or --init) names, for the output checks before anything loads
    (loading checks that it is a model folder)."""
    return SHIPPED_MODEL if name == "default" else Path(name)


def _notes(notes: list[str]) -> None:
    for note in notes:
        print(f"note: {note}", file=sys.stderr)


# ---- dataset ---------------------------------------------------------------------------------


def _add_dataset(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=style_count, required=True, help="number of styles")
    add_seed_argument(parser)  # the first seed: styles use seed .. seed+n-1
    parser.add_argument("--out", type=Path, required=True, help="new dataset folder")
    add_overwrite_argument(parser)
    parser.add_argument(
        "--workers", type=worker_count, default=1, help="processes (the styles do not depend on it)"
    )
    parser.add_argument(
        "--families",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        help="comma-separated style families: only the first N seeds from --seed on that have "
        "one of them (default: every seed, so every family alike)",
    )
    add_style_set_arguments(parser)
    add_sample_arguments(parser)


def _run_dataset(args: argparse.Namespace) -> None:
    OutputPlan(overwrite=args.overwrite).writes_folder("--out", args.out).check()
    config = dataclasses.replace(
        sample_config(args), style_set=args.style_set, max_yaw=args.max_yaw
    )
    seeds = training_seeds(args.n, args.seed, args.families, args.style_set)
    with (
        progress(total=len(seeds), desc="styles") as bar,
        atomic_dir(args.out, overwrite=args.overwrite) as tmp,
    ):
        folders = build_dataset(
            tmp, seeds, config, progress=lambda _count, _folder: bar.update(), workers=args.workers
        )
    echo(f"wrote {len(folders)} styles to {args.out}")


# ---- groom -----------------------------------------------------------------------------------


def _add_groom(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--family",
        choices=list(ALL_FAMILIES),
        help="style family (default: from the seed, among the classic set's)",
    )
    add_seed_argument(parser)
    add_root_candidates_argument(parser)
    add_points_argument(parser)
    add_output_arguments(parser)


def _run_groom(args: argparse.Namespace) -> None:
    groom_output_plan(args).check()
    style = sample_style(args.seed, args.family)
    groom = generate_groom(style, args.root_candidates, args.points)
    written = write_groom_outputs(groom, args, appearance=Appearance.from_style(style))
    echo(
        f"{style.family} (seed {style.seed}): {groom.n_strands} strands -> "
        f"{', '.join(map(str, written))}"
    )


# ---- render ----------------------------------------------------------------------------------


def _add_render(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("groom", type=Path, help="strand file")
    parser.add_argument("--out", type=Path, required=True, help="PNG with several views (.png)")
    parser.add_argument("--size", type=picture_side, default=256, help="side of each view (px)")


def _run_render(args: argparse.Namespace) -> None:
    plan = OutputPlan().reads("strand file", args.groom)
    plan.writes_file("--out", args.out, (".png",)).check()
    points = read_strands(args.groom)
    views = render_views(points, size=args.size)
    save_png(args.out, side_by_side([view.rgb for view in views.values()]))
    echo(f"rendered {len(points)} strands ({', '.join(views)}) -> {args.out}")


# ---- baseline --------------------------------------------------------------------------------


def _add_baseline(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--image", type=Path, required=True, help="front picture of a head (PNG/JPEG/...)"
    )
    parser.add_argument(
        "--dataset", type=Path, required=True, help="folder written by `difforge-hair dataset`"
    )
    parser.add_argument("--method", choices=("retrieval", "mean"), default="retrieval")
    add_output_arguments(parser)


def _run_baseline(args: argparse.Namespace) -> None:
    plan = OutputPlan().reads("--image", args.image).reads("--dataset", args.dataset)
    groom_output_plan(args, plan).check()
    folders = sorted(args.dataset.glob("style_*")) if args.dataset.is_dir() else []
    if not folders:
        raise UserError(
            f"{args.dataset}: no style folders (build one with `difforge-hair dataset`)"
        )
    image, notes = load_conditioning_image(args.image)
    _notes(notes)
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
    echo(f"{args.method}: {groom.n_strands} strands -> {', '.join(map(str, written))}")


# ---- evaluate-baselines ----------------------------------------------------------------------


def _add_evaluate_baselines(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--train", type=style_count, default=280, help="training styles")
    parser.add_argument("--test", type=style_count, default=56, help="held-out styles")
    add_seed_argument(parser)  # the first training seed
    add_train_data_argument(parser)
    add_evaluation_arguments(parser)


def _report_plan(args: argparse.Namespace) -> OutputPlan:
    """The JSON report and Markdown table of ``evaluate`` and ``evaluate-baselines``."""
    plan = OutputPlan().reads("--train-data", args.train_data)
    return plan.writes_file("--out", args.out, (".json",)).writes_file("--md", args.md, (".md",))


def _write_reports(args: argparse.Namespace, reports: dict) -> None:
    table = results_table(reports)
    paths = [args.out] if args.md is None else [args.out, args.md]
    with atomic_paths(paths) as tmp:
        write_json(tmp[0], reports)
        if args.md is not None:
            tmp[1].write_text(table, encoding="utf-8")
    echo(table.rstrip("\n"))


def _progress_bars(totals: dict[str, int]):  # -> (report(stage, count), close())
    bars: dict[str, object] = {}

    def report(stage: str, count: int) -> None:
        if stage not in bars:
            bars[stage] = progress(total=totals.get(stage, totals["test"]), desc=stage)
        bars[stage].update(count - bars[stage].n)

    def close() -> None:
        for bar in bars.values():
            bar.close()

    return report, close


def _run_evaluate_baselines(args: argparse.Namespace) -> None:
    _report_plan(args).check()
    config = EvalConfig(sample=sample_config(args), n_eval_points=args.eval_points)
    training_seeds(args.train, args.seed)  # validate before the long run
    report, close = _progress_bars({"train": args.train, "test": args.test})
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
    close()
    _write_reports(args, reports)


# ---- train-codec / train ---------------------------------------------------------------------


def _add_training_arguments(parser: argparse.ArgumentParser, presets: Path, what: str) -> None:
    add_data_argument(parser)
    parser.add_argument("--out", type=Path, required=True, help=f"{what} folder to write")
    add_overwrite_argument(parser)
    add_config_arguments(parser, presets)


def _check_training_outputs(args: argparse.Namespace, inputs: dict[str, Path | None]) -> None:
    """--data and ``inputs`` are read; --out is written (a folder, replaced only with
    --overwrite); the run folder, which a rerun resumes, may exist but must not be or hold an
    input or --out."""
    from difforge.hair.train import run_dir_of

    plan = OutputPlan(overwrite=args.overwrite).reads("--data", args.data)
    run_plan = OutputPlan(overwrite=True).reads("--data", args.data).reads("--out", args.out)
    for flag, path in inputs.items():
        plan.reads(flag, path)
        run_plan.reads(flag, path)
    plan.writes_folder("--out", args.out).check()
    run_plan.writes_folder("--run-dir", run_dir_of(args.out, args.run_dir)).check()


def _add_train_codec(parser: argparse.ArgumentParser) -> None:
    _add_training_arguments(parser, CODEC_PRESETS, "codec")


def _run_train_codec(args: argparse.Namespace) -> None:
    from difforge.core.train import process_state
    from difforge.hair.run_config import CodecRunConfig
    from difforge.hair.train import train_codec

    config = config_from_args(CodecRunConfig, args)
    _check_training_outputs(args, {})
    metrics = train_codec(args.data, args.out, config, args.run_dir, overwrite=args.overwrite)
    errors = metrics["held_out"]
    if process_state().is_main_process:  # once under torchrun
        echo(
            f"codec -> {args.out}: held-out E_pos {errors['position_mm']:.2f} mm, "
            f"E_dir {errors['direction_deg']:.1f} deg, E_curv {errors['curvature_mm']:.3f} mm"
        )


def _add_train(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--codec", type=Path, help="codec folder from `train-codec`")
    parser.add_argument(
        "--init",
        help="continue from this model folder (or `default`): its codec, DiT weights and "
        "sampling settings, with a fresh schedule (instead of --codec)",
    )
    _add_training_arguments(parser, DIFFUSION_PRESETS, "model")


def _run_train(args: argparse.Namespace) -> None:
    from difforge.core.train import process_state
    from difforge.hair.run_config import DiffusionRunConfig
    from difforge.hair.train import train_diffusion

    config = config_from_args(DiffusionRunConfig, args)
    init = None if args.init is None else _model_input(args.init)
    _check_training_outputs(args, {"--codec": args.codec, "--init": init})
    model = train_diffusion(
        args.data, args.codec, args.out, config, args.run_dir, args.init, overwrite=args.overwrite
    )
    if process_state().is_main_process:  # once under torchrun
        echo(f"model ({model.info['training']['styles']} styles) -> {args.out}")


# ---- generate --------------------------------------------------------------------------------


def _generator(args: argparse.Namespace, seed: int = 0, model=None):  # -> HairGenerator
    """The generator of ``--model`` on ``--device`` with ``--steps``, ``--guidance``,
    ``--min-density``, ``--smooth``, ``--project-head-range``, ``--ensemble`` and ``--bf16`` applied
    (``model``: an already loaded HairModel). Model modules are imported here, lazily."""
    from difforge.hair.model import HairModel
    from difforge.hair.sample import HairGenerator

    device = resolve_device(args.device)
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


def _add_generate(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--image", type=Path, help="a photo of a person, face visible (PNG/JPEG/...)"
    )
    source.add_argument(
        "--maps",
        type=Path,
        help="conditioning maps instead of a photo: a maps.png of `difforge-hair dataset`, or "
        "your own (README, 'Conditioning maps')",
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
    parser.add_argument(
        "--face",
        type=int_arg(0, 1000),
        help="which face of a photo with several (0 = the largest, the default)",
    )
    parser.add_argument(
        "--hair-mask",
        type=Path,
        help="your own hair mask of the photo (an image of its size, non-zero = hair) instead "
        "of the front end's segmentation",
    )
    parser.add_argument(
        "--trim-to-mask",
        action="store_true",
        help="cut strands where they leave the photo's hair mask in the front view (best with "
        "a good --hair-mask)",
    )
    parser.add_argument(
        "--points",
        type=points_per_strand,
        help="points per strand in the files, resampled along a spline (default: the model's, 64)",
    )
    add_seed_argument(parser)
    add_output_arguments(parser)


def _run_generate(args: argparse.Namespace) -> None:
    from difforge.hair.export_tools import resample_strands
    from difforge.hair.photo import model_picture, photo_panels, trim_to_mask

    picture_flag, picture = ("--image", args.image) if args.image else ("--maps", args.maps)
    plan = OutputPlan().reads(picture_flag, picture).reads("--model", _model_input(args.model))
    plan.reads("--hair-mask", args.hair_mask)
    groom_output_plan(args, plan).check()
    generator = _generator(args, args.seed)
    if generator.condition != "maps" and (args.face is not None or args.maps is not None):
        flag = "--face" if args.face is not None else "--maps"
        raise UserError(f"{flag} needs a model that takes maps (this one takes renders)")
    if args.maps is not None and (args.face is not None or args.hair_mask is not None):
        flag = "--face" if args.face is not None else "--hair-mask"
        raise UserError(f"{flag} applies to --image (a photo), not to --maps")
    image, notes, aligned = model_picture(
        args.image,
        generator.condition,
        generator.image_size,
        args.face,
        args.hair_mask,
        maps=args.maps,
    )
    _notes(notes)
    if args.trim_to_mask and aligned is None:
        raise UserError("--trim-to-mask needs --image (a photo) and a model that takes maps")
    groom = generator.generate(image, args.strands, args.seed, args.root_candidates)
    if args.trim_to_mask:
        groom = Groom(trim_to_mask(groom.points, aligned.hair_mask), groom.root_uv)
    if args.points is not None and args.points != groom.points.shape[1]:
        groom = Groom(resample_strands(groom.points, args.points), groom.root_uv)
    shown = image if aligned is None or args.png is None else photo_panels(aligned, groom.points)
    written = write_groom_outputs(groom, args, input_image=shown)
    echo(f"generated {groom.n_strands} strands -> {', '.join(map(str, written))}")


# ---- evaluate --------------------------------------------------------------------------------


def _add_evaluate(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--n", type=style_count, default=56, help="held-out styles")
    parser.add_argument(
        "--train",
        type=style_count,
        help="baselines' training styles, seeds 0.. (default: as many as the model's)",
    )
    add_train_data_argument(parser)
    parser.add_argument("--no-baselines", action="store_true", help="score the model only")
    add_seed_argument(parser)  # the model's noise: style i is sampled with seed + i
    add_evaluation_arguments(parser)


def _run_evaluate(args: argparse.Namespace) -> None:
    from difforge.hair.model import HairModel

    _report_plan(args).reads("--model", _model_input(args.model)).check()
    config = EvalConfig(sample=sample_config(args), n_eval_points=args.eval_points)
    resolve_device(args.device)  # fail before the long run
    model = HairModel.load(args.model)  # on the CPU until the baselines are done
    image_size = model.diffusion.config.image_size
    if image_size != config.sample.image_size:
        raise UserError(f"the model takes {image_size}px pictures: pass --image-size {image_size}")
    n_train = args.train or int(model.info.get("training", {}).get("styles", 280))
    report, close = _progress_bars({"train": n_train, "test": args.n})
    # Baselines first: their worker processes fork before this process holds any CUDA state.
    reports = (
        {}
        if args.no_baselines
        else evaluate_baselines(
            n_train, args.n, 0, config, args.workers, report, args.train_data, args.first_held_out
        )
    )
    generator = _generator(args, args.seed, model=model)
    model_report = evaluate_generator(
        generator, args.n, config, args.workers, report, args.first_held_out
    )
    model_report["protocol"].update(
        model=str(args.model), sampling=dataclasses.asdict(generator.sampling)
    )
    close()
    _write_reports(args, {"difforge_hair": model_report, **reports})


# ---- entry point ----------------------------------------------------------------------------

COMMANDS = [
    Command(
        "dataset",
        "generate N procedural styles: renders, strands, density maps, parameters",
        _add_dataset,
        _run_dataset,
    ),
    Command("groom", "one procedural groom to PLY/OBJ/NPZ/USD and a PNG", _add_groom, _run_groom),
    Command(
        "render", "render a groom file (.npz/.ply/.obj/.usd*) to a PNG", _add_render, _run_render
    ),
    Command(
        "baseline",
        "groom from a picture with a baseline (mean groom or retrieval) fitted on a dataset",
        _add_baseline,
        _run_baseline,
    ),
    Command(
        "evaluate-baselines",
        "fit the mean-groom and retrieval baselines and score them on held-out styles",
        _add_evaluate_baselines,
        _run_evaluate_baselines,
    ),
    Command("train-codec", "train the strand codec (VAE)", _add_train_codec, _run_train_codec),
    Command(
        "train",
        "train the image-conditioned scalp-texture diffusion model",
        _add_train,
        _run_train,
    ),
    Command("generate", "a 3D groom from one front picture", _add_generate, _run_generate),
    Command(
        "evaluate",
        "score a model on held-out styles beside the mean-groom and retrieval baselines",
        _add_evaluate,
        _run_evaluate,
    ),
]

RECIPE_COMMAND = recipe_command(
    RECIPE_PRESETS,
    "difforge.hair.recipe:run_named_recipe",
    stages="data -> codec -> one per DiT run -> evaluate",
    example="diffusion.train.log_every=100 evaluate.n_test=14",
)
COMMANDS.append(RECIPE_COMMAND)


DESCRIPTION = "3D hair strands from one picture: data, training, generation, evaluation."
main = command_line("difforge-hair", DESCRIPTION, COMMANDS)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``difforge-hair`` (for tests and documentation)."""
    return _core_build_parser("difforge-hair", DESCRIPTION, COMMANDS)[0]


if __name__ == "__main__":
    sys.exit(main())
