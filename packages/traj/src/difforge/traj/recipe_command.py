"""The ``recipe`` subcommand (:data:`RECIPE_COMMAND`), apart from :mod:`difforge.traj.recipe` so
that building ``difforge-traj``'s parser imports no model, training or evaluation code.

:func:`recipe_command` is meant for the core (``difforge.core.recipe``): hair carries the same
function in its ``recipe_command.py``, scene the same parser in its ``recipe.py``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from difforge.core.cli import (
    Command,
    add_device_argument,
    add_overwrite_argument,
    echo,
    preset_names,
)

RunNamedRecipe = Callable[..., dict[str, Path]]


class _IntermixedParsing:
    """Reads positionals after options (``recipe tiny --out DIR key=value``); argparse alone
    stops filling positionals at the first option that follows one."""

    _inside = False

    def parse_known_args(self, args=None, namespace=None):
        if self._inside:
            return super().parse_known_args(args, namespace)
        self._inside = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inside = False


def _stage_list(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected stage names separated by commas, got {text!r}")
    return names


def recipe_command(
    recipes_dir: Path,
    run_named_recipe: RunNamedRecipe,
    *,
    stages: str,
    overrides_example: str,
) -> Command:
    """``recipe [NAME|FILE.yaml] --out DIR [--stages a,b] [--overwrite] [--device auto]
    [key=value ...]``: runs ``run_named_recipe(config, out, overrides=, stages=, overwrite=,
    device=)`` and prints every stage's folder. ``stages`` describes the recipe's stages."""

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.__class__ = type("RecipeParser", (_IntermixedParsing, type(parser)), {})
        parser.add_argument(
            "words",
            nargs="*",
            metavar="[NAME|FILE.yaml] [key=value ...]",
            help=f"a recipe ({', '.join(preset_names(recipes_dir))}; default: default) or a YAML "
            f"file, then overrides such as {overrides_example}",
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

        words = list(args.words)
        config = words.pop(0) if words and "=" not in words[0] else None
        folders = run_named_recipe(
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


RECIPES_DIR = Path(__file__).resolve().parent / "configs" / "recipe"


def _run_named_recipe(*args, **kwargs) -> dict[str, Path]:
    from difforge.traj.recipe import run_named_recipe  # imports torch, the model and the data

    return run_named_recipe(*args, **kwargs)


RECIPE_COMMAND = recipe_command(
    RECIPES_DIR,
    _run_named_recipe,
    stages="data -> train -> baselines -> evaluate",
    overrides_example="train.train.steps=500 evaluate.n=1000",
)
