"""Training recipes: how a shipped TrajDLM was made, as a named config and four resumable stages.

``difforge-traj recipe NAME --out DIR`` (or :func:`run_named_recipe`) runs, into ``DIR``::

    1-data/<dataset>/   the dataset folder (a shipped dataset or a user's HOSER folder, copied,
                        optionally cut to a seeded subset of trips) + data.json
    2-train/model/      TrajDLM trained on it (checkpoints in model/train/: a re-run resumes)
    3-baselines/        the models the comparison trains besides TrajDLM: the autoregressive
                        baseline (the same config with block size 1), training ablations, and the
                        HOSER-style next-segment model (hoser_model/)
    4-evaluate/         bench.json, bench.md: every method on the same OD requests, HOSER protocol
                        (the files the RESULTS tables are built from)

The recipes live in ``configs/recipe/`` (``default``: the shipped model's; ``tiny``: the same
stages at toy size, run by the tests). Training stages run on every process of an ``accelerate
launch``; the others on the main process. ``--device`` chooses where the HOSER-style model trains
and where evaluation samples; training stages use the GPUs of the launch (else CUDA if present).
"""

from __future__ import annotations

import csv
import dataclasses
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from difforge.core.cli import echo, resolve_device
from difforge.core.config import apply_overrides, check_config
from difforge.core.errors import UserError
from difforge.core.io import atomic_open, write_json
from difforge.core.recipe import RecipeBook, Stage, recipe_module_main
from difforge.traj import RECIPE_PRESETS
from difforge.traj.bench_settings import BenchSettings
from difforge.traj.data.datasets import DEFAULT_DATASET, available_datasets, dataset_dir
from difforge.traj.data.hoser import ROADMAP_FILES, SPLITS, read_dataset
from difforge.traj.train import TrajTrainConfig, describe, train

# Files of a dataset folder the stages read; meta.json and README.md say how it was made.
DATASET_FILES = (*ROADMAP_FILES, *(f"{s}.csv" for s in SPLITS), "meta.json", "README.md")
AR_DIR, HOSER_DIR = "ar", "hoser_model"


@dataclass(frozen=True)
class RecipeData:
    """The dataset: a shipped dataset's name (``difforge.traj.data.datasets``) or a folder in the
    HOSER layout (roadmap.geo/.rel, train.csv, test.csv, optionally val.csv)."""

    dataset: str = DEFAULT_DATASET
    # Keep at most this many trips of a split (a seeded random subset, in file order), e.g.
    # {train: 200}; splits not named are kept whole.
    max_trips: dict[str, int] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        for split, count in self.max_trips.items():
            check_config(split in SPLITS, "max_trips", f"keyed by {'/'.join(SPLITS)}", split)
            check_config(count >= 1, f"max_trips.{split}", ">= 1", count)


@dataclass(frozen=True)
class RecipeBaselines:
    """Models the comparison trains besides TrajDLM, each the ``train`` config with overrides."""

    # The autoregressive baseline (scored as ``ar_decoding``); empty: no AR model is trained and
    # ``ar_decoding`` decodes the TrajDLM weights one token at a time.
    ar: tuple[str, ...] = ("model.block_size=1",)
    # Training ablations scored as extra rows: row label -> overrides.
    ablations: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class TrajRecipe:
    """A whole recipe; ``version`` changes whenever a change would change what it produces."""

    version: int = 1
    data: RecipeData = field(default_factory=RecipeData)
    train: TrajTrainConfig = field(default_factory=TrajTrainConfig)
    baselines: RecipeBaselines = field(default_factory=RecipeBaselines)
    # evaluate.extra_models: more rows, label -> model folder or "default" (the shipped model);
    # the baselines' ablations are added to them. evaluate.device is --device.
    evaluate: BenchSettings = field(default_factory=BenchSettings)

    def __post_init__(self) -> None:
        check_config(self.version >= 1, "version", ">= 1", self.version)
        check_config(
            self.evaluate.device == BenchSettings.device,
            "evaluate.device",
            "left out (the recipe's --device chooses it)",
            self.evaluate.device,
        )
        if self.baselines.ar:
            check_config(
                "ar_decoding" in self.evaluate.methods,
                "evaluate.methods",
                "to include ar_decoding when baselines.ar trains an AR model",
                self.evaluate.methods,
            )
            block = baseline_config(self, self.baselines.ar).model.block_size
            check_config(block == 1, "baselines.ar", "to give model.block_size=1", block)
        for label, overrides in self.baselines.ablations.items():
            baseline_config(self, overrides)
            check_config(
                label not in self.evaluate.extra_models,
                "baselines.ablations",
                "labelled apart from evaluate.extra_models",
                label,
            )


def baseline_config(recipe: TrajRecipe, overrides: Sequence[str]) -> TrajTrainConfig:
    """The training config of a baseline: the recipe's TrajDLM config with ``overrides``."""
    return apply_overrides(recipe.train, list(overrides))


def _folder_name(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_") or "model"


def _ablation_dirs(recipe: TrajRecipe, stage_dir: Path) -> dict[str, Path]:
    return {
        label: stage_dir / f"ablation_{_folder_name(label)}" for label in recipe.baselines.ablations
    }


# ----------------------------------------------------------------------------------------------
# Stages
# ----------------------------------------------------------------------------------------------


def dataset_source(name: str) -> Path:
    """A shipped dataset's folder by name, else the folder ``name``."""
    if name in available_datasets():
        return dataset_dir(name)
    path = Path(name).expanduser()
    if not (path / "roadmap.geo").is_file():
        raise UserError(
            f"{name}: neither a shipped dataset ({', '.join(available_datasets())}) nor a "
            "folder with roadmap.geo"
        )
    return path


def stage_dataset(data_stage_dir: Path) -> Path:
    """The dataset folder the data stage wrote."""
    folders = [p for p in data_stage_dir.iterdir() if (p / "roadmap.geo").is_file()]
    if len(folders) != 1:
        raise UserError(f"{data_stage_dir}: expected one dataset folder, found {len(folders)}")
    return folders[0]


def _copy_subset(source: Path, target: Path, keep: int, seed: int) -> None:
    """Copy the CSV ``source`` with at most ``keep`` of its rows (seeded choice, file order kept)."""
    with source.open(newline="", encoding="utf-8") as fh:
        header, *rows = list(csv.reader(fh))
    if len(rows) > keep:
        chosen = np.sort(np.random.default_rng(seed).choice(len(rows), keep, replace=False))
        rows = [rows[i] for i in chosen]
    with atomic_open(target, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([header, *rows])


def prepare_data(config: RecipeData, stage_dir: Path) -> Path:
    """Copy the dataset into ``stage_dir/<name>/`` (cut to ``max_trips``), check that every split
    reads, and record where it came from in ``data.json``."""
    source = dataset_source(config.dataset)
    for required in (*ROADMAP_FILES, "train.csv", "test.csv"):
        if not (source / required).is_file():
            raise UserError(f"{source}: missing {required} (training and evaluation need it)")
    target = stage_dir / source.resolve().name
    target.mkdir(parents=True, exist_ok=True)
    for name in DATASET_FILES:
        if not (source / name).is_file():
            continue
        split = name.removesuffix(".csv")
        if split in config.max_trips:
            _copy_subset(source / name, target / name, config.max_trips[split], config.seed)
        else:
            shutil.copyfile(source / name, target / name)
    graph, splits = read_dataset(target)
    write_json(
        stage_dir / "data.json",
        {
            "source": str(config.dataset),  # as given: no path of this machine beyond it
            "dataset": target.name,
            "segments": graph.num_segments,
            "trips": {s: len(t) for s, t in splits.items()},
            "skipped": {s: dict(t.skipped) for s, t in splits.items() if t.skipped},
        },
    )
    echo(f"dataset {target}: " + ", ".join(f"{len(t)} {s}" for s, t in splits.items()) + " trips")
    return target


def echo_once(*lines: str) -> None:
    """:func:`echo` on the main process only (training stages run on every process)."""
    from difforge.core.train import process_state

    if process_state().is_main_process:
        echo(*lines)


def train_model(data: Path, model_dir: Path, config: TrajTrainConfig) -> None:
    """Train (or resume, from the folder's own checkpoints) one TrajDLM into ``model_dir``."""
    echo_once(*describe(train(data, model_dir, config, resume=True)))


def train_baselines(recipe: TrajRecipe, data: Path, stage_dir: Path, device: str) -> None:
    """The AR model and the training ablations (every process), the HOSER-style model (main)."""
    from difforge.core.train import process_state

    if recipe.baselines.ar:
        train_model(data, stage_dir / AR_DIR, baseline_config(recipe, recipe.baselines.ar))
    for label, folder in _ablation_dirs(recipe, stage_dir).items():
        train_model(data, folder, baseline_config(recipe, recipe.baselines.ablations[label]))
    hoser_dir = stage_dir / HOSER_DIR
    wanted = any(m.startswith("hoser") for m in recipe.evaluate.methods)
    if wanted and process_state().is_main_process and not (hoser_dir / "config.json").is_file():
        from difforge.traj.baselines.hoser import train_hoser

        graph, splits = read_dataset(data)
        model, history = train_hoser(
            graph,
            splits["train"],
            val=splits.get("val"),
            epochs=recipe.evaluate.hoser_epochs,
            device=resolve_device(device),
        )
        model.save_pretrained(hoser_dir)
        best = max((h.get("val_accuracy", h["accuracy"]) for h in history), default=0.0)
        echo(f"HOSER baseline saved to {hoser_dir} (next-step accuracy {best:.3f})")


def evaluate(
    recipe: TrajRecipe, previous: Mapping[str, Path], stage_dir: Path, device: str
) -> None:
    """Every method of ``recipe.evaluate`` on the same requests -> bench.json, bench.md."""
    from difforge.traj.bench import run_bench, write_bench
    from difforge.traj.model import TrajDLM, resolve_model_dir

    baselines = previous["baselines"]
    extra = {k: resolve_model_dir(v) for k, v in recipe.evaluate.extra_models.items()}
    settings = dataclasses.replace(
        recipe.evaluate,
        device=str(resolve_device(device)),
        extra_models={**extra, **_ablation_dirs(recipe, baselines)},
    )
    uses_hoser = any(m.startswith("hoser") for m in settings.methods)
    command = f"difforge-traj recipe (stage evaluate of {stage_dir.parent})"
    results = run_bench(
        stage_dataset(previous["data"]),
        TrajDLM.from_pretrained(previous["train"] / "model"),
        settings,
        ar_model_dir=baselines / AR_DIR if recipe.baselines.ar else None,
        hoser_model_dir=baselines / HOSER_DIR if uses_hoser else None,
        log=echo,
        on_progress=lambda partial: write_bench(partial, stage_dir, command),
    )
    write_bench(results, stage_dir, command)
    echo(f"wrote {stage_dir / 'bench.json'} and {stage_dir / 'bench.md'}")


def recipe_stages(recipe: TrajRecipe, device: str = "auto") -> list[Stage]:
    """data -> train -> baselines -> evaluate (module docstring)."""

    def data(out: Path, previous: Mapping[str, Path]) -> None:
        prepare_data(recipe.data, out)

    def train_trajdlm(out: Path, previous: Mapping[str, Path]) -> None:
        train_model(stage_dataset(previous["data"]), out / "model", recipe.train)

    def baselines(out: Path, previous: Mapping[str, Path]) -> None:
        train_baselines(recipe, stage_dataset(previous["data"]), out, device)

    def evaluation(out: Path, previous: Mapping[str, Path]) -> None:
        evaluate(recipe, previous, out, device)

    return [
        Stage("data", data),
        Stage("train", train_trajdlm, distributed=True),
        Stage("baselines", baselines, distributed=True),
        Stage("evaluate", evaluation),
    ]


RECIPES = RecipeBook("traj", TrajRecipe, RECIPE_PRESETS, recipe_stages)
load_recipe = RECIPES.load  # a recipe by name or YAML file (None: default), then overrides
run_named_recipe = RECIPES.run  # runs it into a folder: what `difforge-traj recipe` calls


if __name__ == "__main__":
    from difforge.traj.cli import RECIPE_COMMAND

    recipe_module_main("difforge-traj", RECIPE_COMMAND)
