"""Training recipes: how a shipped hair model was made, as a named config and resumable stages.

``difforge-hair recipe NAME --out DIR`` (or :func:`run_named_recipe`) runs, into ``DIR``::

    1-data/styles/             the training styles (style folders, as ``difforge-hair dataset``),
                               nested so that ``first_<N>/`` holds the first N of them:
                               styles/first_1960/first_980/first_280/seeds_0-279/style_*, ...
           styles_<set>_yaw<D>/  the same for runs whose ``data.style_set`` / ``data.max_yaw``
                               are not the classic frontal ones (e.g. styles_photo_yaw35/)
    2-codec/codec/             the strand codec (+ metrics.json; checkpoints in codec-run/)
    3-<run>/model/, ...        one stage per DiT run of ``diffusion_stages``, in order: a model
                               folder each (checkpoints and encoded textures in model-run/: a
                               re-run resumes); a run with ``init_from`` continues an earlier
                               run's model (its codec, weights, whitening and sampling settings)
    N-evaluate/test.json, .md  the last run's model beside the mean-groom and retrieval baselines
               validation.*    (fitted on the classic frontal styles of the last run that
                               trained on them) on held-out (classic, frontal) styles

Every training config of a recipe is an existing run config (:mod:`difforge.hair.run_config`);
a DiT run is the recipe's ``diffusion`` config with that run's ``key=value`` overrides, and its
``data.styles`` picks how many of the data stage's styles it trains on. **Batch sizes in a recipe
are global**: under ``accelerate launch`` with N processes each trains ``batch_size / N``, so a
recipe trains the same way on one GPU or several. The recipes live in ``configs/recipe/``
(``default``: the shipped model's; ``tiny``: the same stages at toy size, run by the tests).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from difforge.core.cli import echo, resolve_device
from difforge.core.config import apply_overrides, check_config
from difforge.core.errors import ConfigError, UserError
from difforge.core.io import atomic_open, write_json
from difforge.core.recipe import RecipeBook, Stage, recipe_module_main
from difforge.core.train import TrainConfig
from difforge.hair import RECIPE_PRESETS
from difforge.hair.data.dataset import SampleConfig
from difforge.hair.run_config import CodecRunConfig, DataConfig, DiffusionRunConfig

FIXED_STAGES = ("data", "codec", "evaluate")
CLASSIC = (
    "classic",
    0.0,
)  # (style set, largest head yaw) of the styles every model before photo2 saw
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
RunConfig = TypeVar("RunConfig", CodecRunConfig, DiffusionRunConfig)


@dataclass(frozen=True)
class RecipeData:
    """The training styles: seeds ``seed, seed + 1, ...``, as many as the largest ``data.styles``
    of the training stages, with these sample settings (root candidates at full density, points
    per strand, picture side)."""

    seed: int = 0
    root_candidates: int = 10_000
    points: int = 64
    image_size: int = 128
    workers: int = 0  # processes that generate and read styles; 0: all cores but one

    def __post_init__(self) -> None:
        check_config(self.seed >= 0, "seed", ">= 0", self.seed)
        for key in ("root_candidates", "points"):
            check_config(getattr(self, key) >= 2, key, ">= 2", getattr(self, key))
        check_config(self.image_size >= 16, "image_size", ">= 16", self.image_size)
        check_config(self.workers >= 0, "workers", ">= 0", self.workers)

    def sample_config(self, variant: tuple[str, float] = CLASSIC) -> SampleConfig:
        return SampleConfig(self.root_candidates, self.points, self.image_size, *variant)


@dataclass(frozen=True)
class DiffusionStage:
    """One DiT training run: the recipe's ``diffusion`` config with ``overrides``; ``init_from``
    names an earlier run whose model it continues ("": a new DiT on the recipe's codec)."""

    name: str
    init_from: str = ""
    overrides: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_config(
            bool(_STAGE_NAME.match(self.name)) and self.name not in FIXED_STAGES,
            "name",
            f"lower-case letters, digits and _, not {', '.join(FIXED_STAGES)}",
            self.name,
        )


@dataclass(frozen=True)
class RecipeEvaluate:
    """The finished model (its own sampling settings) on ``n_test`` held-out test styles and
    ``n_validation`` validation styles (held-out seeds from the ``first_validation``-th on)."""

    n_test: int = 56
    n_validation: int = 28
    first_validation: int = 1000
    eval_points: int = 100_000  # points per groom the 3D metrics compare
    baselines: bool = True  # mean groom and retrieval, fitted on the last run's styles

    def __post_init__(self) -> None:
        check_config(self.n_test >= 1, "n_test", ">= 1", self.n_test)
        check_config(self.n_validation >= 0, "n_validation", ">= 0", self.n_validation)
        check_config(
            self.first_validation >= self.n_test,
            "first_validation",
            f">= n_test={self.n_test} (validation styles are not test styles)",
            self.first_validation,
        )
        check_config(self.eval_points >= 100, "eval_points", ">= 100", self.eval_points)


@dataclass(frozen=True)
class HairRecipe:
    """A whole recipe; ``version`` changes whenever a change would change what it produces."""

    version: int = 1
    data: RecipeData = field(default_factory=RecipeData)
    codec: CodecRunConfig = field(default_factory=CodecRunConfig)
    diffusion: DiffusionRunConfig = field(default_factory=DiffusionRunConfig)
    diffusion_stages: tuple[DiffusionStage, ...] = (DiffusionStage("diffusion"),)
    evaluate: RecipeEvaluate = field(default_factory=RecipeEvaluate)

    def __post_init__(self) -> None:
        check_config(self.version >= 1, "version", ">= 1", self.version)
        names = [s.name for s in self.diffusion_stages]
        check_config(bool(names), "diffusion_stages", "at least one DiT run", names)
        check_config(len(set(names)) == len(names), "diffusion_stages", "unique names", names)
        check_config(
            self.codec.data.seed == self.data.seed,
            "codec.data.seed",
            f"data.seed={self.data.seed} (the data stage's styles)",
            self.codec.data.seed,
        )
        for index, stage in enumerate(self.diffusion_stages):
            key = f"diffusion_stages[{index}]"
            config = stage_config(self, stage)
            check_config(
                config.data.seed == self.data.seed
                and config.data.image_size == self.data.image_size,
                f"{key}.overrides",
                f"to keep data.seed={self.data.seed} and data.image_size={self.data.image_size}",
                stage.overrides,
            )
            if not stage.init_from:
                continue
            check_config(
                stage.init_from in names[:index],
                f"{key}.init_from",
                f"an earlier run ({', '.join(names[:index]) or 'none'})",
                stage.init_from,
            )
            init = stage_config(self, self.diffusion_stages[names.index(stage.init_from)])
            # The continued model brings its DiT and its sampling settings (train_diffusion).
            check_config(
                config.model == init.model and config.sampling == init.sampling,
                f"{key}.overrides",
                f"to keep the model and sampling of {stage.init_from}",
                stage.overrides,
            )
        check_config(
            not self.evaluate.baselines
            or any(_variant(stage_config(self, s).data) == CLASSIC for s in self.diffusion_stages),
            "evaluate.baselines",
            "a DiT run on classic frontal styles to fit them on",
            self.evaluate.baselines,
        )


def _variant(data: DataConfig) -> tuple[str, float]:
    """Which styles a run reads: (style set, largest head yaw)."""
    return data.style_set, float(data.max_yaw)


def stage_config(recipe: HairRecipe, stage: DiffusionStage) -> DiffusionRunConfig:
    """The training config of one DiT run: the recipe's ``diffusion`` with the run's overrides."""
    try:
        return apply_overrides(recipe.diffusion, list(stage.overrides))
    except ConfigError as exc:
        raise ConfigError(f"diffusion_stages {stage.name}: {exc}") from None


# ----------------------------------------------------------------------------------------------
# Stages
# ----------------------------------------------------------------------------------------------


def _workers(configured: int) -> int:
    """``configured`` processes, or (0) all cores but one; results do not depend on it."""
    if configured:
        return configured
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) - 1)


def _fresh(folder: Path) -> Path:
    """``folder`` without what an interrupted earlier run of its (unfinished) stage left there."""
    if folder.exists():
        shutil.rmtree(folder)
    return folder


def _is_main() -> bool:
    from difforge.core.train import process_state

    return process_state().is_main_process


def _per_process(train: TrainConfig) -> TrainConfig:
    """``train`` with its global batch split over the processes of the launch."""
    from difforge.core.train import process_state

    processes = process_state().num_processes
    if train.batch_size % processes:
        raise UserError(
            f"batch size {train.batch_size} does not split over {processes} processes; "
            "choose a batch size (a recipe's is global) or a process count that divides it"
        )
    return replace(train, batch_size=train.batch_size // processes)


def _as_run(recipe: HairRecipe, config: RunConfig) -> RunConfig:
    """A training stage's config as this process runs it: its share of the global batch, the
    recipe's data workers, and the data stage's sample settings recorded with the model."""
    data = replace(
        config.data,
        workers=_workers(recipe.data.workers),
        n_strands=recipe.data.root_candidates,
        image_size=recipe.data.image_size,
    )
    return replace(config, train=_per_process(config.train), data=data)


def _stage_data(recipe: HairRecipe) -> list[DataConfig]:
    return [recipe.codec.data, *(stage_config(recipe, s).data for s in recipe.diffusion_stages)]


def style_variants(recipe: HairRecipe) -> list[tuple[str, float]]:
    """The (style set, largest yaw) pairs the training stages read, in order of first use."""
    return list(dict.fromkeys(_variant(data) for data in _stage_data(recipe)))


def style_counts(recipe: HairRecipe, variant: tuple[str, float] = CLASSIC) -> list[int]:
    """How many styles each training stage reading ``variant`` reads (the first N), ascending
    and distinct."""
    return sorted({data.styles for data in _stage_data(recipe) if _variant(data) == variant})


def styles_folder(
    data_dir: Path, counts: Sequence[int], count: int, variant: tuple[str, float] = CLASSIC
) -> Path:
    """The data stage's folder holding exactly the first ``count`` styles (one of ``counts``)
    of ``variant``."""
    if count not in counts:
        raise ValueError(f"{count} is not one of the style counts {list(counts)}")
    style_set, max_yaw = variant
    folder = data_dir / ("styles" if variant == CLASSIC else f"styles_{style_set}_yaw{max_yaw:g}")
    for smaller in sorted((c for c in counts if c >= count), reverse=True)[1:]:
        folder = folder / f"first_{smaller}"
    return folder


def make_data(recipe: HairRecipe, stage_dir: Path) -> None:
    """Every style the training stages read, each range of seeds written once (a range whose
    ``index.json`` exists is complete and kept)."""
    from difforge.hair.data.dataset import build_dataset, training_seeds

    for variant in style_variants(recipe):
        counts, start = style_counts(recipe, variant), 0
        for count in counts:
            first, last = recipe.data.seed + start, recipe.data.seed + count - 1
            folder = styles_folder(stage_dir, counts, count, variant)
            part = folder / f"seeds_{first}-{last}"
            if (part / "index.json").is_file():
                echo(f"styles {first}-{last}: written before, kept")
            else:
                seeds = training_seeds(count - start, first, style_set=variant[0])
                config, workers = recipe.data.sample_config(variant), _workers(recipe.data.workers)
                build_dataset(_fresh(part), seeds, config, workers=workers)
                echo(f"styles {first}-{last}: {len(seeds)} written to {part}")
            start = count


def _training_folder(recipe: HairRecipe, previous: Mapping[str, Path], data: DataConfig) -> Path:
    variant = _variant(data)
    return styles_folder(previous["data"], style_counts(recipe, variant), data.styles, variant)


def codec_stage(recipe: HairRecipe, previous: Mapping[str, Path], stage_dir: Path) -> None:
    from difforge.hair.train import train_codec

    config = _as_run(recipe, recipe.codec)
    data = _training_folder(recipe, previous, config.data)
    out = stage_dir / "codec"
    if _is_main():
        _fresh(out)  # training resumes from codec-run/, not from it
    metrics = train_codec(data, out, config, stage_dir / "codec-run")
    held_out = ", ".join(f"{k} {v:.3g}" for k, v in metrics["held_out"].items())
    if _is_main():
        echo(
            f"codec: {metrics['steps']} steps on {config.data.styles} styles; held out: {held_out}"
        )


def diffusion_stage(
    recipe: HairRecipe, stage: DiffusionStage, previous: Mapping[str, Path], stage_dir: Path
) -> None:
    from difforge.hair.train import train_diffusion

    config = _as_run(recipe, stage_config(recipe, stage))
    data = _training_folder(recipe, previous, config.data)
    init = previous[stage.init_from] / "model" if stage.init_from else None
    codec = None if init is not None else previous["codec"] / "codec"
    out = stage_dir / "model"
    if _is_main():
        _fresh(out)  # training resumes from model-run/, not from it
    model = train_diffusion(data, codec, out, config, stage_dir / "model-run", init_dir=init)
    run = model.info["training"]["diffusion"]
    start = f"continuing {stage.init_from}" if init is not None else "from the codec"
    if _is_main():
        echo(
            f"{stage.name}: {run['steps']} steps on {config.data.styles} styles ({start}) -> {out}"
        )


def evaluate_stage(
    recipe: HairRecipe, previous: Mapping[str, Path], stage_dir: Path, device: str
) -> None:
    """test.json/.md and validation.json/.md: the model's report beside the baselines'."""
    import dataclasses

    from difforge.hair.baselines import evaluate_baselines
    from difforge.hair.evaluate import EvalConfig, evaluate_generator, results_table
    from difforge.hair.model import HairModel
    from difforge.hair.sample import HairGenerator

    settings, last = recipe.evaluate, recipe.diffusion_stages[-1]
    model_dir = previous[last.name] / "model"
    config = EvalConfig(sample=recipe.data.sample_config(), n_eval_points=settings.eval_points)
    workers = _workers(recipe.data.workers)
    # The test styles are classic and frontal: the baselines are fitted on such styles.
    runs = [stage_config(recipe, s).data for s in recipe.diffusion_stages]
    styles = [data.styles for data in runs if _variant(data) == CLASSIC][-1]
    train_data = styles_folder(previous["data"], style_counts(recipe), styles)
    splits = [("test", settings.n_test, 0)]
    if settings.n_validation:
        splits.append(("validation", settings.n_validation, settings.first_validation))
    # Baselines first: their worker processes fork before this process holds any CUDA state.
    reports: dict[str, dict[str, dict]] = {
        split: evaluate_baselines(styles, n, 0, config, workers, None, train_data, first)
        if settings.baselines
        else {}
        for split, n, first in splits
    }
    model = HairModel.load(model_dir)
    for split, n, first in splits:
        generator = HairGenerator(model, resolve_device(device))  # fresh: its noise seeds restart
        report = evaluate_generator(generator, n, config, workers, None, first)
        report["protocol"].update(
            model=str(model_dir), sampling=dataclasses.asdict(generator.sampling)
        )
        reports[split] = {"difforge_hair": report, **reports[split]}
        write_json(stage_dir / f"{split}.json", reports[split])
        table = results_table(reports[split])
        with atomic_open(stage_dir / f"{split}.md", "w", encoding="utf-8") as fh:
            fh.write(table)
        echo(f"{split} ({n} held-out styles):", table.rstrip())


def recipe_stages(recipe: HairRecipe, device: str = "auto") -> list[Stage]:
    """data -> codec -> each DiT run -> evaluate (module docstring); the training stages run on
    every process of an ``accelerate launch``, the others on the main process, on ``device``."""
    where = str(resolve_device(device))

    def run_diffusion(stage: DiffusionStage):
        return lambda out, previous: diffusion_stage(recipe, stage, previous, out)

    return [
        Stage("data", lambda out, previous: make_data(recipe, out)),
        Stage("codec", lambda out, previous: codec_stage(recipe, previous, out), distributed=True),
        *(Stage(s.name, run_diffusion(s), distributed=True) for s in recipe.diffusion_stages),
        Stage("evaluate", lambda out, previous: evaluate_stage(recipe, previous, out, where)),
    ]


RECIPES = RecipeBook("hair", HairRecipe, RECIPE_PRESETS, recipe_stages)
load_recipe = RECIPES.load  # a recipe by name or YAML file (None: default), then overrides
run_named_recipe = RECIPES.run  # runs it into a folder: what `difforge-hair recipe` calls


if __name__ == "__main__":
    from difforge.hair.cli import RECIPE_COMMAND

    recipe_module_main("difforge-hair", RECIPE_COMMAND)
