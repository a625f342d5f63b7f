"""Training recipes: how a shipped scene model was made, as a named config and five resumable stages.

``difforge-scene recipe NAME --out DIR`` (or :func:`run_named_recipe`) runs, into ``DIR``::

    1-data/train/, test/    procedural blocks (layouts + rooms; SDFs computed from the rooms)
           meshes/<i>/      users' closed meshes converted into blocks (``data.meshes``)
    2-fit/stage1/           shared decoder + planes of the first ``fit.decoder_blocks`` blocks
          stage2/           every training block's planes under that frozen decoder
          meshes/<i>/       the converted meshes' planes under the same decoder
    3-vae/vae/              the tri-plane VAE (+ metrics.json; checkpoints in vae-run/)
    4-diffusion/model/      the model folder: decoder, VAE, layout-conditioned DiT
                            (checkpoints in model-run/: a re-run resumes)
    5-evaluate/eval.json    the model vs the retrieval baseline on held-out blocks (COV / MMD /
                            1-NNA, layout IoU, seams)

Every stage folder also holds ``stage.json`` (seconds, device). The recipes live in
``configs/recipe/`` (``default``: the shipped model's; ``tiny``: the same stages at toy size, run by
the tests). The VAE and diffusion stages run on every process of an ``accelerate launch``; the
others on the main process, on ``--device``.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from difforge.core.cli import echo, resolve_device
from difforge.core.config import check_config
from difforge.core.io import write_json
from difforge.core.recipe import RecipeBook, Stage, recipe_module_main
from difforge.scene import RECIPE_PRESETS
from difforge.scene.fit import FitConfig, FitRun
from difforge.scene.run_config import DiffusionRunConfig, VAERunConfig

STAGES = ("data", "fit", "vae", "diffusion", "evaluate")


@dataclass(frozen=True)
class RecipeMesh:
    """A user's closed mesh cut into training blocks (as ``difforge-scene convert``)."""

    path: str
    scale: float = 1.0  # factor to metres
    z_up: bool = False
    stride: float = 2.4
    layout: str = ""  # a layout JSON labelling its blocks (world frame); "": unlabelled

    def __post_init__(self) -> None:
        check_config(self.scale > 0, "scale", "> 0", self.scale)
        check_config(self.stride > 0, "stride", "> 0", self.stride)


@dataclass(frozen=True)
class RecipeData:
    """Procedural training and held-out blocks (rooms of different seeds), plus users' meshes."""

    train_blocks: int = 256
    train_seed: int = 1000
    test_blocks: int = 200
    test_seed: int = 2000
    resolution: int = 64  # SDF samples per block axis
    blocks_per_room: int = 8
    meshes: tuple[RecipeMesh, ...] = ()

    def __post_init__(self) -> None:
        for key in ("train_blocks", "test_blocks", "blocks_per_room"):
            check_config(getattr(self, key) >= 1, key, ">= 1", getattr(self, key))
        check_config(self.resolution >= 8, "resolution", ">= 8", self.resolution)
        check_config(
            self.test_seed != self.train_seed, "test_seed", "unlike train_seed", self.test_seed
        )


@dataclass(frozen=True)
class RecipeFit:
    """Both fitting stages: ``stage1`` fits the decoder and the planes of the first
    ``decoder_blocks`` blocks together; stage 2 freezes it and fits every block's planes with the
    same settings for ``stage2_iterations``. ``run``: targets and reports of both (its
    ``workers`` is left out: the stage uses all cores but one, which changes no result)."""

    stage1: FitConfig = field(default_factory=FitConfig)
    decoder_blocks: int = 64
    stage2_iterations: int = 300
    run: FitRun = field(default_factory=FitRun)

    def __post_init__(self) -> None:
        check_config(self.decoder_blocks >= 1, "decoder_blocks", ">= 1", self.decoder_blocks)
        check_config(
            self.stage2_iterations >= 1, "stage2_iterations", ">= 1", self.stage2_iterations
        )
        check_config(
            self.run.workers == FitRun.workers, "run.workers", "left out", self.run.workers
        )


@dataclass(frozen=True)
class RecipeEvaluate:
    """``difforge-scene evaluate`` of the trained model (sampling: the model's own)."""

    n_eval: int = 50  # generated vs held-out blocks, |S_g| = |S_r|
    seams: int = 16  # block pairs of the seam comparison
    seed: int = 0  # which held-out blocks are drawn

    def __post_init__(self) -> None:
        check_config(self.n_eval >= 2, "n_eval", ">= 2", self.n_eval)
        check_config(self.seams >= 0, "seams", ">= 0", self.seams)


@dataclass(frozen=True)
class SceneRecipe:
    """A whole recipe; ``version`` changes whenever a change would change what it produces."""

    version: int = 1
    data: RecipeData = field(default_factory=RecipeData)
    fit: RecipeFit = field(default_factory=RecipeFit)
    vae: VAERunConfig = field(default_factory=VAERunConfig)
    diffusion: DiffusionRunConfig = field(default_factory=DiffusionRunConfig)
    evaluate: RecipeEvaluate = field(default_factory=RecipeEvaluate)

    def __post_init__(self) -> None:
        check_config(self.version >= 1, "version", ">= 1", self.version)


# ----------------------------------------------------------------------------------------------
# Stages
# ----------------------------------------------------------------------------------------------


def _workers(jobs: int) -> int:
    """Processes for per-block CPU work: all cores but one, none idle (results do not depend on
    it: every block's work is seeded by its index)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min((cores or 1) - 1, jobs))


def _fresh(folder: Path) -> Path:
    """``folder`` without what an interrupted earlier run of its (unfinished) stage left there."""
    if folder.exists():
        shutil.rmtree(folder)
    return folder


def make_data(config: RecipeData, stage_dir: Path) -> None:
    from difforge.scene.data.blocks import write_dataset
    from difforge.scene.data.layout import read_layout

    for name, n, seed in (
        ("train", config.train_blocks, config.train_seed),
        ("test", config.test_blocks, config.test_seed),
    ):
        write_dataset(
            _fresh(stage_dir / name), n, seed, config.resolution, config.blocks_per_room,
            with_sdf=False,
        )  # fmt: skip
        echo(f"{name}: {n} procedural blocks (seed {seed})")
    if config.meshes:  # libigl (exact mesh SDFs) only where meshes are used
        from difforge.scene.data.meshes import write_mesh_dataset
    for i, mesh in enumerate(config.meshes):
        layout = read_layout(mesh.layout) if mesh.layout else None
        blocks = write_mesh_dataset(
            mesh.path, _fresh(stage_dir / "meshes" / str(i)), config.resolution, mesh.stride,
            mesh.scale, mesh.z_up, layout,
        )  # fmt: skip
        echo(f"mesh {mesh.path}: {len(blocks)} blocks")


def fit_stage(recipe: SceneRecipe, data: Path, stage_dir: Path, device: str) -> None:
    """Stage 1 (decoder + planes), stage 2 (frozen decoder, every block), then users' meshes; a
    fit folder finished before (its fit.json written) is kept."""
    from dataclasses import replace

    from difforge.scene.fit import fit_dataset

    settings = recipe.fit
    stage2 = replace(settings.stage1, iterations=settings.stage2_iterations)
    decoder = stage_dir / "stage1" / "decoder"
    meshes = range(len(recipe.data.meshes))
    fits = [
        (data / "train", stage_dir / "stage1", settings.stage1, settings.decoder_blocks, None),
        (data / "train", stage_dir / "stage2", stage2, None, decoder),
        *((data / "meshes" / str(i), stage_dir / "meshes" / str(i), stage2, None, decoder)
          for i in meshes),
    ]  # fmt: skip
    run = replace(settings.run, workers=_workers(recipe.data.train_blocks))
    for source, target, config, first, decoder_dir in fits:
        if (target / "fit.json").is_file():
            echo(f"{target}: fitted before, kept")
            continue
        report = fit_dataset(
            source, _fresh(target), config, run, first=first, decoder_dir=decoder_dir, device=device
        )
        echo(f"{target}: {report['blocks']} blocks fitted ({report['stage']})")


def fit_folders(fit_dir: Path, n_meshes: int) -> list[Path]:
    """The fit folders the VAE and the DiT train on: the meshes', then stage 2 (the last folder's
    dataset is the one the VAE's held-out reconstruction is measured on)."""
    return [fit_dir / "meshes" / str(i) for i in range(n_meshes)] + [fit_dir / "stage2"]


def _trainer_output(stage_dir: Path, name: str) -> Path:
    """Where this process writes a training function's output folder. Under ``accelerate launch``
    every process trains the same model and scene's train functions save it from each of them:
    the other processes write their copy into a scratch folder, deleted afterwards."""
    from difforge.core.train import process_state

    state = process_state()
    if state.is_main_process:
        return stage_dir / name
    return stage_dir / f".process{state.process_index}" / name


def train_stage(
    recipe: SceneRecipe, previous: Mapping[str, Path], stage_dir: Path, kind: str
) -> None:
    """The VAE (``kind`` "vae") or the latent DiT ("diffusion"), resuming from the stage's own
    checkpoints; ``time_limit_s`` counts from this call."""
    from difforge.scene.train import train_diffusion, train_vae

    fits = fit_folders(previous["fit"], len(recipe.data.meshes))
    name = "vae" if kind == "vae" else "model"
    out = _fresh(_trainer_output(stage_dir, name))  # training resumes from run_dir, not from it
    run_dir = stage_dir / f"{name}-run"
    if kind == "vae":
        train_vae(fits, out, recipe.vae, run_dir)
    else:
        train_diffusion(fits, previous["vae"] / "vae", out, recipe.diffusion, run_dir)
    if out.parent != stage_dir:
        shutil.rmtree(out.parent, ignore_errors=True)


def evaluate_stage(
    recipe: SceneRecipe, previous: Mapping[str, Path], stage_dir: Path, device: str
) -> None:
    """The model beside the retrieval baseline on the held-out blocks -> eval.json."""
    from difforge.scene.data.blocks import BlockDataset
    from difforge.scene.evaluate_model import evaluate_model
    from difforge.scene.pipeline import ScenePipeline

    settings = recipe.evaluate
    model_dir = previous["diffusion"] / "model"
    generator = ScenePipeline.from_pretrained(model_dir).to(device).generator()
    result = evaluate_model(
        generator,
        BlockDataset(previous["data"] / "train"),
        BlockDataset(previous["data"] / "test"),
        settings.n_eval,
        settings.seed,
        settings.seams,
        None if device == "cpu" else device,  # CPU Chamfer: exact k-d trees, faster than cdist
        _workers(settings.n_eval),
    )
    result["model"] = str(model_dir)
    write_json(stage_dir / "eval.json", result)
    for method, scores in result["methods"].items():
        distribution = scores.get("distribution", {})
        echo(f"{method}: " + ", ".join(f"{k} {v:.1f}" for k, v in distribution.items()))


def _device_name(device: str) -> str:
    import torch

    return torch.cuda.get_device_name(device) if device.startswith("cuda") else device


def _timed(run: Callable[[Path, Mapping[str, Path]], None], device: str):
    """``run`` that also writes ``stage.json`` (its seconds and the device) into its folder."""

    def timed(stage_dir: Path, previous: Mapping[str, Path]) -> None:
        from difforge.core.train import process_state

        started = time.perf_counter()
        run(stage_dir, previous)
        if process_state().is_main_process:
            seconds = round(time.perf_counter() - started, 1)
            write_json(
                stage_dir / "stage.json", {"seconds": seconds, "device": _device_name(device)}
            )

    return timed


def recipe_stages(recipe: SceneRecipe, device: str = "auto") -> list[Stage]:
    """data -> fit -> vae -> diffusion -> evaluate (module docstring)."""
    where = str(resolve_device(device))
    runs = {
        "data": lambda out, previous: make_data(recipe.data, out),
        "fit": lambda out, previous: fit_stage(recipe, previous["data"], out, where),
        "vae": lambda out, previous: train_stage(recipe, previous, out, "vae"),
        "diffusion": lambda out, previous: train_stage(recipe, previous, out, "diffusion"),
        "evaluate": lambda out, previous: evaluate_stage(recipe, previous, out, where),
    }
    return [
        Stage(name, _timed(run, where), distributed=name in ("vae", "diffusion"))
        for name, run in runs.items()
    ]


RECIPES = RecipeBook("scene", SceneRecipe, RECIPE_PRESETS, recipe_stages)
load_recipe = RECIPES.load  # a recipe by name or YAML file (None: default), then overrides
run_named_recipe = RECIPES.run  # runs it into a folder: what `difforge-scene recipe` calls


if __name__ == "__main__":
    from difforge.scene.cli import RECIPE_COMMAND

    recipe_module_main("difforge-scene", RECIPE_COMMAND)
