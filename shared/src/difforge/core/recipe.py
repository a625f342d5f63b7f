"""Training recipes: the stages that made a shipped model, as named configs and Python, resumable.

A recipe is a list of :class:`Stage` objects run in order into one folder, one sub-folder a stage::

    OUT/
      recipe.json          the recipe's name, version and whole config (written first)
      1-data/   .done      a finished stage holds a .done file and is skipped on a re-run
      2-codec/             an unfinished stage is run again; its own checkpoints make it resume
      3-diffusion/
      4-evaluate/

A stage gets its folder and the folders of the stages before it. Stages that train through
:class:`difforge.core.train.Trainer` run on every process of an ``accelerate launch`` (set
``distributed=True``); the other stages run on the main process only, and the other processes
wait for them (by watching for ``.done`` files) only where a later distributed stage reads them,
so the same recipe runs on one CPU, one GPU or several GPUs with no change.

A re-run of the same folder with a different recipe config is refused (the stages already done
would not match the new config) unless ``overwrite`` starts the folder afresh.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from difforge.core.cli import (
    DEFAULT_PRESET,
    Command,
    add_device_argument,
    add_overwrite_argument,
    command_line,
    echo,
    load_preset,
    preset_names,
)
from difforge.core.config import config_diff, to_dict
from difforge.core.errors import UserError
from difforge.core.io import check_folder_output, exclusive_lock, write_json

__all__ = [
    "RECIPE_FILE",
    "RecipeBook",
    "Stage",
    "recipe_command",
    "recipe_module_main",
    "run_recipe",
]

RecipeT = TypeVar("RecipeT")
RECIPE_FILE = "recipe.json"
DONE_FILE = ".done"


@dataclass(frozen=True)
class Stage:
    """One step of a recipe: ``run(stage_dir, previous)`` writes its results into ``stage_dir``;
    ``previous`` maps the earlier stages' names to their folders."""

    name: str
    run: Callable[[Path, Mapping[str, Path]], None]
    distributed: bool = False


def run_recipe(
    name: str,
    config: Any,
    stages: Sequence[Stage],
    out_dir: str | Path,
    *,
    only: Sequence[str] | None = None,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Path]:
    """Run ``stages`` of the recipe ``name`` (``config``: its dataclass, saved to ``recipe.json``)
    into ``out_dir``; finished stages are skipped. ``only`` runs just those stages (their earlier
    stages must be done). Returns every stage's folder."""
    from difforge.core.train import process_state

    out = Path(out_dir)
    names = [s.name for s in stages]
    unknown = sorted(set(only or ()) - set(names))
    if unknown:
        raise UserError(f"unknown stage(s) {', '.join(unknown)} (stages: {', '.join(names)})")
    state = process_state()
    record = {"recipe": name, "config": to_dict(config)}
    if state.is_main_process:
        _prepare_folder(out, record, overwrite)
    state.wait_for_everyone()

    folders = {s.name: out / f"{i}-{s.name}" for i, s in enumerate(stages, start=1)}
    requested = set(only) if only else set(names)
    last_requested = max(names.index(n) for n in requested)
    say = log if state.is_main_process else (lambda _: None)
    done: dict[str, Path] = {}
    for index, stage in enumerate(stages):
        folder = folders[stage.name]
        if (folder / DONE_FILE).is_file():
            say(f"stage {stage.name}: done before, reusing {folder}")
        elif stage.name in requested:
            say(f"stage {stage.name}: running into {folder}")
            if stage.distributed:
                # The other processes meet the main one only once it has finished the stages this
                # one reads: waiting by polling files, not inside a collective that can time out.
                _wait_until_done(done.values())
                state.wait_for_everyone()
                _run_stage(stage, folder, dict(done), state.is_main_process)
                state.wait_for_everyone()
            elif state.is_main_process:
                _run_stage(stage, folder, dict(done), True)
            if state.is_main_process:
                (folder / DONE_FILE).write_text("done\n", encoding="utf-8")
        elif index < last_requested:
            raise UserError(f"stage {stage.name} of {out} is not done yet; run it first")
        else:
            continue
        done[stage.name] = folder
    return done


def _wait_until_done(folders: Iterable[Path], poll_s: float = 1.0) -> None:
    for folder in folders:
        while not (folder / DONE_FILE).is_file():
            time.sleep(poll_s)


def _run_stage(stage: Stage, folder: Path, previous: dict[str, Path], is_main: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    # One writer per stage folder: a second recipe run on the same folder stops with one line.
    with exclusive_lock(folder, "recipe run") if is_main else contextlib.nullcontext():
        stage.run(folder, previous)
    if is_main:
        (folder / ".lock").unlink(missing_ok=True)


def _prepare_folder(out: Path, record: dict[str, Any], overwrite: bool) -> None:
    from difforge.core.pretrained import read_json_object

    recipe_file = out / RECIPE_FILE
    if recipe_file.is_file():
        saved = read_json_object(recipe_file)
        differing = config_diff(saved, record)
        if differing and not overwrite:
            raise UserError(
                f"{out} holds a run of another recipe config (differing: {', '.join(differing)}); "
                "pass --overwrite to start it afresh or choose another folder"
            )
        if differing:
            shutil.rmtree(out)
    elif out.exists():
        check_folder_output(out, overwrite=overwrite)
        if overwrite:
            shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    if not recipe_file.is_file():
        write_json(recipe_file, record)


@dataclass(frozen=True)
class RecipeBook(Generic[RecipeT]):
    """A package's named recipes: ``load`` reads one (a preset name in ``presets_dir`` or a YAML
    file, None is ``default``, then ``key=value`` overrides); ``run`` runs its stages
    (``stages_of(recipe, device)``) into a folder with :func:`run_recipe`. A package binds its
    ``load_recipe`` and ``run_named_recipe`` (the function ``recipe_command`` names) to these."""

    package: str
    recipe_cls: type[RecipeT]
    presets_dir: Path
    stages_of: Callable[[RecipeT, str], Sequence[Stage]]

    def load(self, config: str | os.PathLike[str] | None, overrides: Sequence[str] = ()) -> RecipeT:
        return load_preset(self.recipe_cls, self.presets_dir, config, overrides)

    def run(
        self,
        config: str | os.PathLike[str] | None,
        out_dir: str | Path,
        *,
        overrides: Sequence[str] = (),
        stages: Sequence[str] | None = None,
        overwrite: bool = False,
        device: str = "auto",
    ) -> dict[str, Path]:
        """Returns every stage's folder; ``stages`` runs only those (earlier ones must be done)."""
        recipe = self.load(config, overrides)
        name = DEFAULT_PRESET if config is None else Path(config).stem
        return run_recipe(
            f"{self.package}/{name}",
            recipe,
            self.stages_of(recipe, device),
            out_dir,
            only=stages,
            overwrite=overwrite,
            log=echo,
        )


def recipe_module_main(prog: str, command: Command) -> None:
    """``python -m difforge.<name>.recipe NAME --out DIR ...``, read as ``<prog> recipe ...``:
    GPU launchers (``accelerate launch -m``) have no console script."""
    sys.exit(command_line(prog, command.help, [command])([command.name, *sys.argv[1:]]))


def recipe_command(
    recipes_dir: Path, run_named_recipe: str, *, stages: str, example: str
) -> Command:
    """A package's ``recipe`` subcommand: ``recipe [NAME|FILE.yaml] --out DIR [--stages a,b]
    [--overwrite] [--device auto] [key=value ...]``.

    ``run_named_recipe`` names the package's function (``"difforge.<name>.recipe:run_named_recipe"``,
    imported only when the command runs, so that ``--help`` stays quick), called as
    ``run_named_recipe(config, out, overrides=, stages=, overwrite=, device=)`` and returning
    every stage's folder. ``stages`` lists the recipe's stages for the help; ``example`` shows an
    override.
    """

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "words",
            nargs="*",
            metavar="[NAME|FILE.yaml] [key=value ...]",
            help=f"a recipe ({', '.join(preset_names(recipes_dir))}; default: default) or a YAML "
            f"file, then overrides such as {example}",
        )
        parser.add_argument("--out", type=Path, required=True, help="the run's folder")
        parser.add_argument(
            "--stages",
            type=_stage_list,
            help=f"run only these stages ({stages}); the stages before them must be done",
        )
        add_overwrite_argument(parser)
        add_device_argument(parser)

    def run(args: argparse.Namespace) -> None:
        from difforge.core.train import process_state

        module, _, function = run_named_recipe.partition(":")
        words = list(args.words)
        config = words.pop(0) if words and "=" not in words[0] else None
        folders = getattr(importlib.import_module(module), function)(
            config,
            args.out,
            overrides=words,
            stages=args.stages,
            overwrite=args.overwrite,
            device=args.device,
        )
        if process_state().is_main_process:  # once, not from every process of a launch
            echo(*(f"{name}: {folder}" for name, folder in folders.items()))

    return Command(
        "recipe",
        f"run a training recipe ({stages}) into resumable stage folders",
        add_arguments,
        run,
    )


def _stage_list(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected stage names separated by commas, got {text!r}")
    return names
