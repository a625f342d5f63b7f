"""``difforge-scene``: one subcommand per stage, built on the core's ``command_line``.

Data: dataset, convert, procedural. Model: fit (tri-planes + shared decoder), train-vae, train
(latent diffusion), generate, expand. Tools: render, evaluate (a model or the retrieval baseline).
Every command checks its outputs against its inputs (``OutputPlan``) before any work and writes
them atomically, all or none; the model commands import torch-heavy modules only when they run.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

from difforge.core.cli import (
    MAX_SEED,
    Command,
    add_config_arguments,
    add_device_argument,
    add_overwrite_argument,
    add_seed_argument,
    command_line,
    config_from_args,
    echo,
    float_arg,
    int_arg,
    resolve_device,
)
from difforge.core.errors import UserError
from difforge.core.io import atomic_paths, write_json
from difforge.core.outputs import OutputPlan
from difforge.core.recipe import recipe_command
from difforge.scene import DIFFUSION_PRESETS, RECIPE_PRESETS, VAE_PRESETS

MESH_OUTPUTS = (".glb", ".ply", ".obj")
# A scene of more blocks takes minutes per block on a CPU and its mesh grows with the block count;
# --max-blocks lifts the limit for a user who means it.
DEFAULT_MAX_BLOCKS = 64
MAX_RESOLUTION = 256  # SDF samples per block axis: memory grows with its cube
MAX_POINTS = 10_000_000  # per block: point banks and evaluation clouds
MAX_WORKERS = 256


def _blocks_arg(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)", text.strip())
    if not match or int(match[1]) < 1 or int(match[2]) < 1:
        raise argparse.ArgumentTypeError(f"expected NxM with N, M >= 1 (e.g. 2x2), got {text!r}")
    return int(match[1]), int(match[2])


def _index_arg(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(-?\d+),(-?\d+)", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"expected IX,IZ (e.g. 1,0), got {text!r}")
    return int(match[1]), int(match[2])


def _add_blocks_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--blocks", type=_blocks_arg, default="2x2", help="NxM blocks")
    p.add_argument(
        "--max-blocks",
        type=int_arg(1),
        default=DEFAULT_MAX_BLOCKS,
        help="refuse scenes of more blocks than this (each block takes seconds to minutes)",
    )


def _check_blocks(args: argparse.Namespace) -> None:
    nx, nz = args.blocks
    if nx * nz > args.max_blocks:
        raise UserError(
            f"--blocks {nx}x{nz} is {nx * nz} blocks, more than --max-blocks {args.max_blocks}; "
            f"pass --max-blocks {nx * nz} to build it anyway"
        )


def _add_resolution_argument(p: argparse.ArgumentParser) -> None:
    from difforge.scene.data.geometry import DEFAULT_RESOLUTION

    p.add_argument(
        "--resolution",
        type=int_arg(8, MAX_RESOLUTION, raise_with="memory grows with its cube"),
        default=DEFAULT_RESOLUTION,
        help="SDF samples per block axis",
    )


def _model_input(name: str | None) -> Path | None:
    """The folder a --model names, for the output checks (None: the retrieval baseline)."""
    from difforge.scene.model import resolve_model_dir

    return None if name in (None, "retrieval") else resolve_model_dir(name)


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------


def _add_dataset(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", type=int_arg(1, 10_000_000), required=True, help="number of blocks")
    add_seed_argument(p)
    p.add_argument("--out", type=Path, required=True, help="new dataset folder")
    add_overwrite_argument(p)
    _add_resolution_argument(p)
    p.add_argument(
        "--blocks-per-room", type=int_arg(1, 1000), default=8, help="blocks cut from each room"
    )
    p.add_argument("--no-sdf", action="store_true", help="store layouts and rooms only")


def _dataset(args: argparse.Namespace) -> None:
    from difforge.scene.data.blocks import write_dataset

    OutputPlan(overwrite=args.overwrite).writes_folder("--out", args.out).check()
    out = write_dataset(
        args.out,
        n_blocks=args.n,
        seed=args.seed,
        resolution=args.resolution,
        blocks_per_room=args.blocks_per_room,
        with_sdf=not args.no_sdf,
        overwrite=args.overwrite,
    )
    echo(f"wrote {args.n} blocks to {out}")


def _add_convert(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mesh", type=Path, required=True, help="a closed mesh (OBJ/PLY/GLB/STL/OFF)")
    p.add_argument("--out", type=Path, required=True, help="new dataset folder")
    add_overwrite_argument(p)
    _add_resolution_argument(p)
    p.add_argument(
        "--stride", type=float_arg(0, 3.2, low_open=True), default=2.4, help="block spacing (m)"
    )
    p.add_argument(
        "--scale", type=float_arg(0, 1e6, low_open=True), default=1.0, help="factor to metres"
    )
    p.add_argument("--z-up", action="store_true", help="the file's up axis is z")
    p.add_argument(
        "--layout", type=Path, help="layout JSON (world frame after placement) labelling blocks"
    )
    p.add_argument("--png", type=Path, help="also render the converted scene to this PNG")


def _convert(args: argparse.Namespace) -> None:
    from difforge.scene.data.layout import read_layout
    from difforge.scene.data.meshes import write_mesh_dataset
    from difforge.scene.meshing import mesh_blocks
    from difforge.scene.render import render_png

    plan = OutputPlan(overwrite=args.overwrite).reads("--mesh", args.mesh)
    plan.reads("--layout", args.layout).writes_folder("--out", args.out)
    plan.writes_file("--png", args.png, (".png",)).check()
    layout = read_layout(args.layout) if args.layout else None
    with atomic_paths([args.png] if args.png else []) as previews:
        blocks = write_mesh_dataset(
            args.mesh,
            args.out,
            resolution=args.resolution,
            stride=args.stride,
            scale=args.scale,
            z_up=args.z_up,
            layout=layout,
            overwrite=args.overwrite,
            before_commit=lambda blocks: [render_png(mesh_blocks(blocks), p) for p in previews],
        )
    echo(f"wrote {len(blocks)} blocks of {args.mesh} to {args.out}")


def _add_procedural(p: argparse.ArgumentParser) -> None:
    add_seed_argument(p)
    _add_blocks_arguments(p)
    p.add_argument("--out", type=Path, required=True, help="SCENE.glb, .ply or .obj")
    p.add_argument("--png", type=Path, help="also render to this PNG")
    p.add_argument("--layout-out", type=Path, help="also write the room's layout JSON")
    _add_resolution_argument(p)


def _procedural(args: argparse.Namespace) -> None:
    from difforge.scene.data.blocks import room_scene
    from difforge.scene.data.layout import write_layout
    from difforge.scene.meshing import colour_by_class, export_mesh, mesh_blocks
    from difforge.scene.render import render_png

    _check_blocks(args)
    plan = OutputPlan().writes_file("--out", args.out, MESH_OUTPUTS)
    plan.writes_file("--png", args.png, (".png",))
    plan.writes_file("--layout-out", args.layout_out, (".json",)).check()
    room, blocks = room_scene(args.seed, *args.blocks, resolution=args.resolution)
    mesh = mesh_blocks(blocks)
    colour_by_class(mesh, room)
    outputs = [p for p in (args.out, args.png, args.layout_out) if p is not None]
    with atomic_paths(outputs) as tmps:
        paths = dict(zip(outputs, tmps))
        export_mesh(mesh, paths[args.out], file_type=args.out.suffix.lower().lstrip("."))
        if args.png:
            render_png(mesh, paths[args.png])
        if args.layout_out:
            write_layout(paths[args.layout_out], room.layout)
    echo(f"wrote {args.out} ({len(blocks)} blocks, {len(mesh.faces)} faces)")


def _add_render(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mesh", type=Path, required=True, help="mesh file (OBJ/PLY/GLB/STL/OFF)")
    p.add_argument("--png", type=Path, required=True, help="PNG to write")
    p.add_argument("--azimuth", type=float_arg(-360, 360), default=35.0, help="degrees")
    p.add_argument("--elevation", type=float_arg(-90, 90), default=55.0, help="degrees")


def _render(args: argparse.Namespace) -> None:
    from difforge.scene.data.meshes import read_mesh_file
    from difforge.scene.render import render_png

    OutputPlan().reads("--mesh", args.mesh).writes_file("--png", args.png, (".png",)).check()
    mesh = read_mesh_file(args.mesh)
    render_png(mesh, args.png, azimuth=args.azimuth, elevation=args.elevation)
    echo(f"wrote {args.png}")


# ----------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------


def _add_fit(p: argparse.ArgumentParser) -> None:
    from difforge.scene.fit import FitConfig, FitRun

    points = int_arg(1, MAX_POINTS)
    p.add_argument("--data", type=Path, required=True, help="dataset folder")
    p.add_argument(
        "--out", type=Path, required=True, help="folder: decoder/, planes.safetensors, fit.json"
    )
    add_overwrite_argument(p)
    p.add_argument(
        "--decoder", type=Path, help="a fitted decoder/ folder: freeze it and fit planes only"
    )
    p.add_argument("--first", type=int_arg(1), help="fit only the first N blocks")
    fit, run = FitConfig, FitRun
    for flag, kind, default, text in (
        ("--iterations", int_arg(1, 10_000_000), fit.iterations, "optimiser steps"),
        ("--channels", int_arg(1, 256), fit.channels, "features per plane"),
        ("--plane-resolution", int_arg(2, 1024), fit.resolution, "plane side"),
        ("--hidden", int_arg(1, 4096), fit.hidden, "decoder MLP width"),
        ("--layers", int_arg(1, 64), fit.layers, "decoder MLP layers"),
        ("--points-per-step", points, fit.points_per_step, "per block and per kind"),
        ("--tv-weight", float_arg(0, 1e6), fit.w_tv, "plane smoothness"),
        ("--surface-points", points, run.surface_points, "target bank per block"),
        ("--space-points", points, run.space_points, "target bank per block"),
        ("--workers", int_arg(1, MAX_WORKERS), run.workers, "processes preparing the targets"),
        ("--eval-blocks", int_arg(0), run.eval_blocks, "blocks meshed for the F-score"),
        ("--eval-points", int_arg(100, MAX_POINTS), run.eval_points, "per side (F-score)"),
        ("--chunk-blocks", int_arg(1), run.chunk_blocks, "blocks fitted together (frozen decoder)"),
        ("--keep-surface", points, run.keep_surface, "surface samples stored per block (VAE)"),
    ):
        p.add_argument(flag, type=kind, default=default, help=text)
    add_device_argument(p)
    add_seed_argument(p)


def _fit(args: argparse.Namespace) -> None:
    from difforge.scene.fit import FitConfig, FitRun, fit_dataset

    plan = OutputPlan(overwrite=args.overwrite).reads("--data", args.data)
    plan.reads("--decoder", args.decoder).writes_folder("--out", args.out).check()
    config = FitConfig(
        channels=args.channels,
        resolution=args.plane_resolution,
        hidden=args.hidden,
        layers=args.layers,
        iterations=args.iterations,
        points_per_step=args.points_per_step,
        w_tv=args.tv_weight,
        seed=args.seed,
    )
    run = FitRun(
        args.surface_points,
        args.space_points,
        args.workers,
        args.chunk_blocks,
        args.eval_blocks,
        args.eval_points,
        args.keep_surface,
    )
    report = fit_dataset(
        args.data,
        args.out,
        config,
        run,
        first=args.first,
        decoder_dir=args.decoder,
        device=resolve_device(args.device),
        overwrite=args.overwrite,
    )
    echo(json.dumps({key: v for key, v in report.items() if key != "history"}, indent=1))


def _add_training_arguments(p: argparse.ArgumentParser, presets: Path) -> None:
    p.add_argument(
        "--fit", type=Path, nargs="+", required=True, help="fit folder(s) (same decoder)"
    )
    p.add_argument("--out", type=Path, required=True, help="folder to write")
    add_overwrite_argument(p)
    p.add_argument("--run-dir", type=Path, help="checkpoints, resumed by a rerun (none: <out>-run)")
    add_config_arguments(p, presets)


def _check_training_outputs(args: argparse.Namespace, inputs: list[tuple[str, Path]]) -> None:
    """The fit folders (and the datasets they name) and ``inputs`` are read; --out is written
    (a folder, replaced only with --overwrite); the run folder, which a rerun resumes, may exist
    but must not be or hold an input or --out."""
    from difforge.scene.train import run_dir_of

    for fit in args.fit:
        inputs.append(("--fit", fit))
        try:
            data = json.loads((fit / "fit.json").read_text(encoding="utf-8")).get("data")
        except (OSError, ValueError, AttributeError, RecursionError):
            data = None  # reading the fit folder reports it
        if isinstance(data, str):
            inputs.append((f"the dataset of --fit {fit}", Path(data)))
    plan = OutputPlan(overwrite=args.overwrite)
    run_plan = OutputPlan(overwrite=True).reads("--out", args.out)
    for flag, path in inputs:
        plan.reads(flag, path)
        run_plan.reads(flag, path)
    plan.writes_folder("--out", args.out).check()
    run_plan.writes_folder("--run-dir", run_dir_of(args.out, args.run_dir)).check()


def _process_started_at() -> float:
    """``time.monotonic()`` at this process's start, so that a command's ``time_limit_s`` also
    covers python start-up and imports (seconds on a cold machine: RESULTS.md)."""
    import psutil

    return time.monotonic() - max(0.0, time.time() - psutil.Process().create_time())


def _add_train_vae(p: argparse.ArgumentParser) -> None:
    _add_training_arguments(p, VAE_PRESETS)


def _train_vae(args: argparse.Namespace) -> None:
    from difforge.scene.run_config import VAERunConfig
    from difforge.scene.train import train_vae

    config = config_from_args(VAERunConfig, args)
    _check_training_outputs(args, [])
    metrics = train_vae(
        args.fit, args.out, config, args.run_dir, _process_started_at(), args.overwrite
    )
    echo(json.dumps({k: v for k, v in metrics.items() if k != "final_logs"}, indent=1))


def _add_train(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--vae", required=True, help="VAE folder, or 'raw' to diffuse raw tri-planes (ablation)"
    )
    _add_training_arguments(p, DIFFUSION_PRESETS)


def _train(args: argparse.Namespace) -> None:
    from difforge.scene.run_config import DiffusionRunConfig
    from difforge.scene.train import train_diffusion

    config = config_from_args(DiffusionRunConfig, args)
    vae = None if args.vae == "raw" else Path(args.vae)
    _check_training_outputs(args, [("--vae", vae)] if vae is not None else [])
    model = train_diffusion(
        args.fit, vae, args.out, config, args.run_dir, _process_started_at(), args.overwrite
    )
    echo(json.dumps(model.info["training"]["diffusion"], indent=1))
    echo(f"wrote the model folder {args.out}")


# ----------------------------------------------------------------------------------------------
# Generation
# ----------------------------------------------------------------------------------------------


def _add_sampling_arguments(p: argparse.ArgumentParser) -> None:
    add_device_argument(p)
    p.add_argument("--steps", type=int_arg(1, 10_000), help="sampling steps (none: the model's)")
    p.add_argument(
        "--guidance",
        type=float_arg(0, 100),
        help="guidance scale w: u + (w+1)(c-u) (none: the model's)",
    )


def _sampling_overrides(args: argparse.Namespace) -> dict[str, float | int]:
    """The sampling flags the user gave (``--steps`` sets both samplers' step counts)."""
    overrides: dict[str, float | int] = {}
    if args.steps is not None:
        overrides.update(steps=args.steps, repaint_steps=args.steps)
    if args.guidance is not None:
        overrides["guidance_scale"] = args.guidance
    return overrides


def _pipeline(model: str | Path, args: argparse.Namespace):  # -> ScenePipeline (lazy import)
    from difforge.scene.pipeline import ScenePipeline

    return ScenePipeline.from_pretrained(model).to(resolve_device(args.device))


def _add_generate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="default", help="model folder or 'default'")
    _add_blocks_arguments(p)
    p.add_argument(
        "--layout", type=Path, help="layout JSON covering the scene (none: a procedural room's)"
    )
    p.add_argument("--unconditional", action="store_true", help="no layout at all (null condition)")
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="SCENE.glb/.ply/.obj; the scene folder SCENE/ (for expand) is written beside it",
    )
    add_overwrite_argument(p)
    p.add_argument("--png", type=Path, help="also render to this PNG")
    add_seed_argument(p)
    _add_sampling_arguments(p)


def _generate(args: argparse.Namespace) -> None:
    from difforge.scene.data.blocks import room_scene_layout
    from difforge.scene.data.layout import read_layout
    from difforge.scene.meshing import GEOMETRY_COLOURS, export_mesh
    from difforge.scene.render import render_png
    from difforge.scene.sample import is_scene_folder, save_scene
    from difforge.scene.viewer import write_viewer

    _check_blocks(args)
    folder = args.out.with_suffix("")
    # The scene folder of an earlier generate is this command's own output, replaced like the
    # mesh; any other folder there is the user's and needs --overwrite.
    plan = OutputPlan(overwrite=args.overwrite or is_scene_folder(folder))
    plan.reads("--layout", args.layout).reads("--model", _model_input(args.model))
    plan.writes_file("--out", args.out, MESH_OUTPUTS).writes_file("--png", args.png, (".png",))
    # A GLB gets its 3D viewer page beside it (SCENE.html).
    viewer = args.out.with_suffix(".html") if args.out.suffix.lower() == ".glb" else None
    plan.writes_file("viewer page of --out", viewer, (".html",))
    plan.writes_folder("scene folder of --out", folder).check()
    layout = read_layout(args.layout) if args.layout else None
    pipe = _pipeline(args.model, args)
    if layout is None and not args.unconditional:
        layout = room_scene_layout(args.seed, *args.blocks, pipe.model.sampling.stride)
    out = pipe(layout, args.blocks, args.seed, **_sampling_overrides(args))
    if len(out.mesh.faces) == 0:
        raise UserError("the generated scene has no surface (the model produced empty blocks)")
    files = [p for p in (args.out, args.png, viewer) if p is not None]
    with atomic_paths(files) as tmps:
        paths = dict(zip(files, tmps))
        export_mesh(out.mesh, paths[args.out], file_type=args.out.suffix.lower().lstrip("."))
        if viewer:
            write_viewer(out.mesh, paths[viewer], args.out.stem, GEOMETRY_COLOURS)
        if args.png:
            render_png(out.mesh, paths[args.png], caption=GEOMETRY_COLOURS)
        save_scene(out.scene, folder, overwrite=True)  # checked by the plan above
    echo(f"wrote {args.out} ({len(out.latents)} blocks, {len(out.mesh.faces)} faces) and {folder}/")


def _add_expand(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scene", type=Path, required=True, help="scene folder (from generate/expand)")
    p.add_argument(
        "--direction",
        required=True,
        choices=sorted(("+x", "-x", "+z", "-z")),
        help="side to grow; write --direction=-x (with '=') for the minus sides",
    )
    p.add_argument("--out", type=Path, required=True, help="new scene folder (not --scene)")
    add_overwrite_argument(p)
    p.add_argument("--at", type=_index_arg, help="expand beside this block only (IX,IZ)")
    p.add_argument("--layout", type=Path, help="world-frame layout JSON replacing the scene's")
    p.add_argument("--model", help="model folder or 'default' (none: the scene's)")
    p.add_argument("--png", action="store_true", help="also render scene.png into the folder")
    p.add_argument(
        "--seed",
        type=int_arg(0, MAX_SEED),
        help="random seed (none: derived from the scene's seed and history)",
    )
    _add_sampling_arguments(p)


def _expand(args: argparse.Namespace) -> None:
    from difforge.scene.data.layout import read_layout
    from difforge.scene.sample import load_scene, save_scene

    plan = OutputPlan(overwrite=args.overwrite).reads("--scene", args.scene)
    plan.reads("--layout", args.layout).reads("--model", _model_input(args.model))
    plan.writes_folder("--out", args.out).check()
    scene = load_scene(args.scene)
    if args.layout:
        scene.layout = read_layout(args.layout)
    pipe = _pipeline(args.model or scene.model or "default", args)
    out = pipe.expand(scene, args.direction, args.seed, args.at, **_sampling_overrides(args))
    added = [index for index in out.latents if index not in scene.latents]
    save_scene(out.scene, args.out, out.mesh, png=args.png, overwrite=args.overwrite)
    echo(f"added {len(added)} block(s) {added}; wrote {args.out} ({len(out.mesh.faces)} faces)")


def _add_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model folder, 'default' or 'retrieval'")
    p.add_argument("--train", type=Path, required=True, help="training dataset folder")
    p.add_argument(
        "--test", type=Path, required=True, help="held-out dataset folder (another seed)"
    )
    p.add_argument("--out", type=Path, required=True, help="results JSON")
    p.add_argument("--n-eval", type=int_arg(1, 100_000), default=100, help="|S_g| = |S_r|")
    p.add_argument(
        "--seams", type=int_arg(0, 100_000), default=16, help="block pairs for the seam comparison"
    )
    add_seed_argument(p)
    p.add_argument(
        "--workers",
        type=int_arg(1, MAX_WORKERS),
        default=1,
        help="processes meshing/sampling blocks",
    )
    _add_sampling_arguments(p)


def _evaluate(args: argparse.Namespace) -> None:
    from difforge.scene.baseline import evaluate_retrieval
    from difforge.scene.data.blocks import BlockDataset

    plan = OutputPlan().reads("--train", args.train).reads("--test", args.test)
    plan.reads("--model", _model_input(args.model)).writes_file("--out", args.out, (".json",))
    plan.check()
    device = resolve_device(args.device)
    # On the CPU the Chamfer distances use k-d trees (device None), elsewhere torch.
    chamfer_device = None if device.type == "cpu" else str(device)
    train, test = BlockDataset(args.train), BlockDataset(args.test)
    if args.model == "retrieval":
        result = evaluate_retrieval(
            train,
            test,
            n_eval=args.n_eval,
            seed=args.seed,
            device=chamfer_device,
            workers=args.workers,
        )
    else:
        from difforge.scene.evaluate_model import evaluate_model

        generator = _pipeline(args.model, args).generator(**_sampling_overrides(args))
        result = evaluate_model(
            generator, train, test, args.n_eval, args.seed, args.seams, chamfer_device, args.workers
        )
        result["model"] = str(args.model)
    write_json(args.out, result)
    echo(json.dumps(result["methods"], indent=1))


RECIPE_COMMAND = recipe_command(
    RECIPE_PRESETS,
    "difforge.scene.recipe:run_named_recipe",
    stages="data -> fit -> vae -> diffusion -> evaluate",
    example="diffusion.train.steps=500 evaluate.n_eval=100",
)

COMMANDS = [
    Command("dataset", "generate procedural SDF blocks with layouts", _add_dataset, _dataset),
    Command(
        "convert",
        "turn your own closed mesh (OBJ/PLY/GLB...) into SDF blocks",
        _add_convert,
        _convert,
    ),
    Command(
        "procedural",
        "mesh a procedural room cut into overlapping blocks",
        _add_procedural,
        _procedural,
    ),
    Command("fit", "fit tri-planes (and a shared decoder) to dataset blocks", _add_fit, _fit),
    Command("render", "render any mesh file to PNG on the CPU", _add_render, _render),
    Command(
        "train-vae", "train the tri-plane VAE on fitted tri-planes", _add_train_vae, _train_vae
    ),
    Command("train", "train the layout-conditioned latent diffusion model", _add_train, _train),
    Command(
        "generate", "generate a scene of NxM blocks with a trained model", _add_generate, _generate
    ),
    Command("expand", "add blocks to a saved scene on one side", _add_expand, _expand),
    Command("evaluate", "evaluate a model or the retrieval baseline", _add_evaluate, _evaluate),
    RECIPE_COMMAND,
]

main = command_line(
    "difforge-scene", "Expandable 3D indoor scenes, block by block (after BlockFusion).", COMMANDS
)

if __name__ == "__main__":
    raise SystemExit(main())
