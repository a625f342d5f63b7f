"""``difforge-scene``: one subcommand per stage; user mistakes print ``error: ...`` and exit 2.

Data: dataset, convert, procedural. Model: fit (tri-planes + shared decoder), train-vae, train
(latent diffusion), generate, expand. Tools: render, evaluate (a model or the retrieval baseline).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from difforge.core.cli import add_config_arguments
from difforge.core.errors import UserError
from difforge.core.io import write_json
from difforge.scene.data.geometry import DEFAULT_RESOLUTION
from difforge.scene.fit import FitConfig

if TYPE_CHECKING:
    from difforge.scene.pipeline import ScenePipeline


def _blocks_arg(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)", text.strip())
    if not match or int(match[1]) < 1 or int(match[2]) < 1:
        raise argparse.ArgumentTypeError(f"expected NxM with N, M >= 1 (e.g. 2x2), got {text!r}")
    return int(match[1]), int(match[2])


def cmd_dataset(args: argparse.Namespace) -> None:
    from difforge.scene.data.blocks import write_dataset

    out = write_dataset(
        args.out,
        n_blocks=args.n,
        seed=args.seed,
        resolution=args.resolution,
        blocks_per_room=args.blocks_per_room,
        with_sdf=not args.no_sdf,
    )
    print(f"wrote {args.n} blocks to {out}")


def cmd_convert(args: argparse.Namespace) -> None:
    from difforge.scene.data.layout import read_layout
    from difforge.scene.data.meshes import write_mesh_dataset
    from difforge.scene.meshing import mesh_blocks
    from difforge.scene.render import render_png

    layout = read_layout(args.layout) if args.layout else None
    blocks = write_mesh_dataset(
        args.mesh,
        args.out,
        resolution=args.resolution,
        stride=args.stride,
        scale=args.scale,
        z_up=args.z_up,
        layout=layout,
    )
    if args.png:
        render_png(mesh_blocks(blocks), args.png)
    print(f"wrote {len(blocks)} blocks of {args.mesh} to {args.out}")


def cmd_procedural(args: argparse.Namespace) -> None:
    from difforge.scene.data.blocks import room_scene
    from difforge.scene.data.layout import write_layout
    from difforge.scene.meshing import colour_by_class, export_mesh, mesh_blocks
    from difforge.scene.render import render_png

    _check_mesh_suffix(args.out)
    room, blocks = room_scene(args.seed, *args.blocks, resolution=args.resolution)
    mesh = mesh_blocks(blocks)
    colour_by_class(mesh, room)
    export_mesh(mesh, args.out)
    if args.png:
        render_png(mesh, args.png)
    if args.layout_out:
        write_layout(args.layout_out, room.layout)
    print(f"wrote {args.out} ({len(blocks)} blocks, {len(mesh.faces)} faces)")


def cmd_fit(args: argparse.Namespace) -> None:
    import time

    import torch

    from difforge.core.io import atomic_dir
    from difforge.scene.data.blocks import BlockDataset
    from difforge.scene.fit import (
        SUPERVISION_FIELDS,
        FitConfig,
        Supervision,
        dataset_supervision,
        decode_grids,
        fit_triplanes,
        reconstruction_report,
        save_fit,
    )
    from difforge.scene.triplane import TriPlaneDecoder, load_decoder

    dataset = BlockDataset(args.data)
    n = len(dataset) if args.first is None else min(args.first, len(dataset))
    if n < 1:
        raise UserError("--first must be at least 1")
    if args.decoder:
        decoder = load_decoder(args.decoder)
        channels, hidden, layers = (decoder.config[k] for k in ("channels", "hidden", "layers"))
    else:
        channels, hidden, layers = args.channels, args.hidden, args.layers
        decoder = TriPlaneDecoder(channels=channels, hidden=hidden, layers=layers)
    config = FitConfig(
        channels=channels,
        resolution=args.plane_resolution,
        hidden=hidden,
        layers=layers,
        iterations=args.iterations,
        points_per_step=args.points_per_step,
        w_tv=args.tv_weight,
        seed=args.seed,
    )
    start = time.perf_counter()
    sup, blocks, sources = dataset_supervision(
        dataset, list(range(n)), args.surface_points, args.space_points, args.workers
    )
    prepared = time.perf_counter()
    # Stage 1 fits everything at once (the decoder sees all blocks); stage 2 fits the planes of
    # independent chunks of blocks, so memory does not grow with the dataset.
    chunk = n if not args.decoder else max(1, args.chunk_blocks)
    parts, history = [], []
    for lo in range(0, n, chunk):
        part = Supervision(*(getattr(sup, f)[lo : lo + chunk] for f in SUPERVISION_FIELDS))
        planes_part, history = fit_triplanes(part, decoder, config, not args.decoder, args.device)
        parts.append(planes_part)
    planes = torch.cat(parts)
    fitted = time.perf_counter()
    k = min(args.eval_blocks, n)
    grids = decode_grids(decoder, planes[:k], dataset.resolution, args.device)
    report = {
        "blocks": n,
        "data": str(Path(args.data).resolve()),
        "stage": "planes only (frozen decoder)" if args.decoder else "decoder + planes",
        "device": torch.cuda.get_device_name()
        if str(args.device).startswith("cuda")
        else str(args.device),
        "seconds_supervision": prepared - start,
        "seconds_fit": fitted - prepared,
        "history": history,
        f"reconstruction_first_{k}_blocks": reconstruction_report(
            grids, blocks[:k], sources[:k], args.eval_points
        ),
    }
    # Surface samples kept for the VAE's SDF loss (a random subset per block).
    keep = torch.randperm(sup.surface.shape[1], generator=torch.Generator().manual_seed(0))
    surface = sup.surface[:, keep[: args.keep_surface]]
    with atomic_dir(args.out) as tmp:
        save_fit(tmp, decoder, planes, dataset.origins[:n], config, report, surface)
    print(json.dumps({key: v for key, v in report.items() if key != "history"}, indent=1))


def cmd_render(args: argparse.Namespace) -> None:
    import trimesh

    from difforge.scene.render import render_png

    if not Path(args.mesh).is_file():
        raise UserError(f"mesh file {args.mesh} does not exist")
    try:
        mesh = trimesh.load(args.mesh, force="mesh")
    except Exception as exc:  # trimesh raises many types for malformed files
        raise UserError(f"cannot read mesh {args.mesh}: {exc}") from None
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise UserError(f"{args.mesh}: the mesh is empty (no triangles)")
    render_png(mesh, args.png, azimuth=args.azimuth, elevation=args.elevation)
    print(f"wrote {args.png}")


def _process_started_at() -> float:
    """``time.monotonic()`` at this process's start, so that a command's ``time_limit_s`` also
    covers python start-up and imports (seconds on a cold machine: RESULTS.md)."""
    import time

    import psutil

    return time.monotonic() - max(0.0, time.time() - psutil.Process().create_time())


def cmd_train_vae(args: argparse.Namespace) -> None:
    from difforge.scene.run_config import load_run_config
    from difforge.scene.train import train_vae

    config = load_run_config("vae", args.config, args.overrides)
    metrics = train_vae(args.fit, args.out, config, args.run_dir, _process_started_at())
    print(json.dumps({k: v for k, v in metrics.items() if k != "final_logs"}, indent=1))


def cmd_train(args: argparse.Namespace) -> None:
    from difforge.scene.run_config import load_run_config
    from difforge.scene.train import train_diffusion

    config = load_run_config("diffusion", args.config, args.overrides)
    vae = None if args.vae == "raw" else args.vae
    model = train_diffusion(args.fit, vae, args.out, config, args.run_dir, _process_started_at())
    print(json.dumps(model.info["training"]["diffusion"], indent=1))
    print(f"wrote the model folder {args.out}")


def _pipeline(model_name: str | Path, args: argparse.Namespace) -> ScenePipeline:
    from difforge.core.cli import resolve_device
    from difforge.scene.pipeline import ScenePipeline

    return ScenePipeline.from_pretrained(model_name).to(resolve_device(args.device or "cpu"))


def _sampling_overrides(args: argparse.Namespace) -> dict[str, float | int]:
    """The sampling flags the user gave (``--steps`` sets both samplers' step counts)."""
    overrides: dict[str, float | int] = {}
    if args.steps is not None:
        overrides.update(steps=args.steps, repaint_steps=args.steps)
    if args.guidance is not None:
        overrides["guidance_scale"] = args.guidance
    return overrides


def cmd_generate(args: argparse.Namespace) -> None:
    from difforge.scene.data.blocks import room_scene_layout
    from difforge.scene.data.layout import read_layout
    from difforge.scene.render import render_png
    from difforge.scene.sample import save_scene

    _check_mesh_suffix(args.out)
    layout = read_layout(args.layout) if args.layout else None
    pipe = _pipeline(args.model, args)
    if layout is None and not args.unconditional:
        layout = room_scene_layout(args.seed, *args.blocks, pipe.model.sampling.stride)
    out = pipe(layout, args.blocks, args.seed, **_sampling_overrides(args))
    if len(out.mesh.faces) == 0:
        raise UserError("the generated scene has no surface (the model produced empty blocks)")
    folder = Path(args.out).with_suffix("")
    save_scene(out.scene, folder)
    out.save(args.out)
    if args.png:
        render_png(out.mesh, args.png)
    print(
        f"wrote {args.out} ({len(out.latents)} blocks, {len(out.mesh.faces)} faces) and {folder}/"
    )


def _index_arg(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(-?\d+),(-?\d+)", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"expected IX,IZ (e.g. 1,0), got {text!r}")
    return int(match[1]), int(match[2])


def cmd_expand(args: argparse.Namespace) -> None:
    from difforge.scene.data.layout import read_layout
    from difforge.scene.sample import load_scene, save_scene

    scene = load_scene(args.scene)
    if args.layout:
        scene.layout = read_layout(args.layout)
    pipe = _pipeline(args.model or scene.model or "default", args)
    out = pipe.expand(scene, args.direction, args.seed, args.at, **_sampling_overrides(args))
    added = [index for index in out.latents if index not in scene.latents]
    save_scene(out.scene, args.out, out.mesh, png=args.png)
    print(f"added {len(added)} block(s) {added}; wrote {args.out} ({len(out.mesh.faces)} faces)")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from difforge.scene.baseline import evaluate_retrieval
    from difforge.scene.data.blocks import BlockDataset

    if args.train is None or args.test is None:
        raise UserError("evaluate needs --train DIR and --test DIR (dataset folders)")
    train, test = BlockDataset(args.train), BlockDataset(args.test)
    if args.model == "retrieval":
        result = evaluate_retrieval(
            train,
            test,
            n_eval=args.n_eval,
            seed=args.seed,
            device=args.device,
            workers=args.workers,
        )
    else:
        from difforge.scene.evaluate_model import evaluate_model

        generator = _pipeline(args.model, args).generator(**_sampling_overrides(args))
        result = evaluate_model(
            generator, train, test, args.n_eval, args.seed, args.seams, args.device, args.workers
        )
        result["model"] = str(args.model)
    write_json(args.out, result)
    print(json.dumps(result["methods"], indent=1))


def _check_mesh_suffix(path: str) -> None:
    from difforge.scene.meshing import EXPORT_FORMATS

    if Path(path).suffix.lower().lstrip(".") not in EXPORT_FORMATS:
        raise UserError(f"--out {path}: use one of .{', .'.join(EXPORT_FORMATS)}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="difforge-scene",
        description="Expandable 3D indoor scenes, block by block (after BlockFusion).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("dataset", help="generate procedural SDF blocks with layouts")
    p.add_argument("--n", type=int, required=True, help="number of blocks")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True, help="new (or empty) dataset folder")
    p.add_argument(
        "--resolution", type=int, default=DEFAULT_RESOLUTION, help="SDF samples per axis"
    )
    p.add_argument("--blocks-per-room", type=int, default=8)
    p.add_argument("--no-sdf", action="store_true", help="store layouts and rooms only")
    p.set_defaults(func=cmd_dataset)

    p = sub.add_parser("convert", help="turn your own closed mesh (OBJ/PLY/GLB...) into SDF blocks")
    p.add_argument("--mesh", required=True)
    p.add_argument("--out", required=True, help="new (or empty) dataset folder")
    p.add_argument("--resolution", type=int, default=DEFAULT_RESOLUTION)
    p.add_argument("--stride", type=float, default=2.4, help="block spacing in metres")
    p.add_argument("--scale", type=float, default=1.0, help="factor to metres")
    p.add_argument("--z-up", action="store_true", help="the file's up axis is z")
    p.add_argument("--layout", help="layout JSON (world frame after placement) labelling blocks")
    p.add_argument("--png", help="also render the converted scene to this PNG")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("procedural", help="mesh a procedural room cut into overlapping blocks")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--blocks", type=_blocks_arg, default=(2, 2), help="NxM blocks, e.g. 2x2")
    p.add_argument("--out", required=True, help="SCENE.glb, .ply or .obj")
    p.add_argument("--png", help="also render to this PNG")
    p.add_argument("--layout-out", help="also write the room's layout JSON")
    p.add_argument("--resolution", type=int, default=DEFAULT_RESOLUTION)
    p.set_defaults(func=cmd_procedural)

    p = sub.add_parser("fit", help="fit tri-planes (and a shared decoder) to dataset blocks")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument(
        "--out", required=True, help="output folder: decoder/, planes.safetensors, fit.json"
    )
    p.add_argument("--decoder", help="a fitted decoder/ folder: freeze it and fit planes only")
    p.add_argument("--first", type=int, help="fit only the first N blocks")
    p.add_argument("--iterations", type=int, default=500)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--plane-resolution", type=int, default=64)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--points-per-step", type=int, default=4096, help="per block and per kind")
    p.add_argument("--tv-weight", type=float, default=FitConfig.w_tv, help="plane smoothness")
    p.add_argument("--surface-points", type=int, default=200_000, help="target bank per block")
    p.add_argument("--space-points", type=int, default=200_000, help="target bank per block")
    p.add_argument("--device", default="cpu")
    p.add_argument("--workers", type=int, default=1, help="processes preparing the targets")
    p.add_argument("--eval-blocks", type=int, default=8, help="blocks meshed for the F-score")
    p.add_argument("--eval-points", type=int, default=100_000, help="points per side (F-score)")
    p.add_argument(
        "--chunk-blocks", type=int, default=256, help="blocks fitted together (frozen decoder)"
    )
    p.add_argument(
        "--keep-surface", type=int, default=4096, help="surface samples stored per block (VAE)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("render", help="render any mesh file to PNG on the CPU")
    p.add_argument("--mesh", required=True)
    p.add_argument("--png", required=True)
    p.add_argument("--azimuth", type=float, default=35.0)
    p.add_argument("--elevation", type=float, default=55.0)
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("train-vae", help="train the tri-plane VAE on fitted tri-planes")
    p.add_argument("--fit", nargs="+", required=True, help="fit folder(s) (same decoder)")
    p.add_argument("--out", required=True, help="VAE folder to write")
    p.add_argument("--run-dir", help="checkpoints (default: <out>-run)")
    add_config_arguments(p)
    p.set_defaults(func=cmd_train_vae)

    p = sub.add_parser("train", help="train the layout-conditioned latent diffusion model")
    p.add_argument("--fit", nargs="+", required=True, help="fit folder(s) (same decoder)")
    p.add_argument(
        "--vae", required=True, help="VAE folder, or 'raw' to diffuse raw tri-planes (ablation)"
    )
    p.add_argument("--out", required=True, help="model folder to write")
    p.add_argument("--run-dir", help="checkpoints (default: <out>-run)")
    add_config_arguments(p)
    p.set_defaults(func=cmd_train)

    def sampling_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
        p.add_argument("--steps", type=int, help="sampling steps (default: the model's)")
        p.add_argument("--guidance", type=float, help="guidance scale w: u + (w+1)(c-u)")

    p = sub.add_parser("generate", help="generate a scene of NxM blocks with a trained model")
    p.add_argument("--model", required=True, help="model folder or 'default'")
    p.add_argument("--blocks", type=_blocks_arg, default=(2, 2), help="NxM blocks, e.g. 2x2")
    p.add_argument("--layout", help="layout JSON covering the scene (default: a procedural room's)")
    p.add_argument("--unconditional", action="store_true", help="no layout at all (null condition)")
    p.add_argument(
        "--out", required=True, help="SCENE.glb/.ply/.obj; the scene folder goes beside it"
    )
    p.add_argument("--png", help="also render to this PNG")
    p.add_argument("--seed", type=int, default=0)
    sampling_arguments(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("expand", help="add blocks to a saved scene on one side")
    p.add_argument("--scene", required=True, help="scene folder (from generate or expand)")
    p.add_argument("--direction", required=True, choices=sorted(("+x", "-x", "+z", "-z")))
    p.add_argument("--out", required=True, help="scene folder to write (may be --scene)")
    p.add_argument("--at", type=_index_arg, help="expand beside this block only (IX,IZ)")
    p.add_argument("--layout", help="world-frame layout JSON replacing the scene's")
    p.add_argument("--model", help="model folder or 'default' (default: the scene's)")
    p.add_argument("--png", action="store_true", help="also render scene.png into the folder")
    p.add_argument("--seed", type=int)
    sampling_arguments(p)
    p.set_defaults(func=cmd_expand)

    p = sub.add_parser("evaluate", help="evaluate a model or the retrieval baseline")
    p.add_argument("--model", required=True, help="model folder, 'default' or 'retrieval'")
    p.add_argument("--train", help="training dataset folder")
    p.add_argument("--test", help="held-out dataset folder (another seed)")
    p.add_argument("--out", required=True, help="results JSON")
    p.add_argument("--n-eval", type=int, default=100, help="|S_g| = |S_r|")
    p.add_argument("--seams", type=int, default=16, help="block pairs for the seam comparison")
    p.add_argument("--seed", type=int, default=0, help="which held-out blocks are drawn")
    p.add_argument("--device", help="torch device (model and Chamfer; default: CPU, k-d trees)")
    p.add_argument("--steps", type=int, help="sampling steps (default: the model's)")
    p.add_argument("--guidance", type=float, help="guidance scale w: u + (w+1)(c-u)")
    p.add_argument("--workers", type=int, default=1, help="processes meshing/sampling blocks")
    p.set_defaults(func=cmd_evaluate)
    return parser


def _join_direction(argv: list[str]) -> list[str]:
    """``--direction -x`` as ``--direction=-x``: argparse would read ``-x`` as an option."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] == "--direction" and i + 1 < len(argv) and argv[i + 1] in ("-x", "-z"):
            out.append(f"--direction={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(_join_direction(list(sys.argv[1:] if argv is None else argv)))
    func: Callable[[argparse.Namespace], None] = args.func
    try:
        func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
