"""Recipes: stages run once into their folders, resume after a failure, refuse a changed config."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from difforge.core.errors import UserError
from difforge.core.recipe import Stage, run_recipe


@dataclass(frozen=True)
class ToyRecipe:
    version: int = 1
    size: int = 3


def _stages(calls: list[str], fail_in: str | None = None) -> list[Stage]:
    def data(folder: Path, previous: Mapping[str, Path]) -> None:
        calls.append("data")
        (folder / "data.json").write_text(json.dumps(list(range(3))))

    def train(folder: Path, previous: Mapping[str, Path]) -> None:
        calls.append("train")
        if fail_in == "train":
            raise RuntimeError("killed")
        values = json.loads((previous["data"] / "data.json").read_text())
        (folder / "model.json").write_text(json.dumps(sum(values)))

    return [Stage("data", data), Stage("train", train, distributed=True)]


def test_stages_run_in_order_and_resume_after_a_failure(tmp_path: Path) -> None:
    calls: list[str] = []
    out = tmp_path / "run"
    with pytest.raises(RuntimeError):
        run_recipe("toy", ToyRecipe(), _stages(calls, fail_in="train"), out, log=lambda _: None)
    assert calls == ["data", "train"]
    assert (out / "1-data" / ".done").is_file() and not (out / "2-train" / ".done").exists()
    calls.clear()
    folders = run_recipe("toy", ToyRecipe(), _stages(calls), out, log=lambda _: None)
    assert calls == ["train"]  # the finished data stage is reused
    assert json.loads((folders["train"] / "model.json").read_text()) == 3
    assert json.loads((out / "recipe.json").read_text())["config"] == {"version": 1, "size": 3}


def test_a_changed_config_or_a_foreign_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_recipe("toy", ToyRecipe(), _stages([]), out, log=lambda _: None)
    with pytest.raises(UserError, match=r"another recipe config \(differing: config.size\)"):
        run_recipe("toy", ToyRecipe(size=4), _stages([]), out, log=lambda _: None)
    calls: list[str] = []
    run_recipe("toy", ToyRecipe(size=4), _stages(calls), out, overwrite=True, log=lambda _: None)
    assert calls == ["data", "train"]
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "me.jpg").write_bytes(b"jpg")
    with pytest.raises(UserError, match="already exists; pass --overwrite"):
        run_recipe("toy", ToyRecipe(), _stages([]), foreign, log=lambda _: None)
    assert (foreign / "me.jpg").read_bytes() == b"jpg"


def test_only_runs_the_named_stages(tmp_path: Path) -> None:
    calls: list[str] = []
    with pytest.raises(UserError, match=r"stage data of .* is not done yet"):
        run_recipe("toy", ToyRecipe(), _stages(calls), tmp_path / "a", only=["train"])
    run_recipe(
        "toy", ToyRecipe(), _stages(calls), tmp_path / "b", only=["data"], log=lambda _: None
    )
    assert calls == ["data"]
    with pytest.raises(UserError, match="unknown stage"):
        run_recipe("toy", ToyRecipe(), _stages(calls), tmp_path / "b", only=["codec"])


def run_toy_recipe(config, out, *, overrides=(), stages=None, overwrite=False, device="auto"):
    """The ``run_named_recipe`` of a toy package, for the command test below."""
    from difforge.core.cli import load_preset

    recipe = load_preset(ToyRecipe, RECIPES, config, overrides)
    return run_recipe("toy", recipe, _stages([]), out, only=stages, overwrite=overwrite)


RECIPES = Path("set by the test")


def test_recipe_command_reads_name_options_and_overrides_in_any_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from difforge.core.cli import command_line
    from difforge.core.recipe import recipe_command

    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "default.yaml").write_text("size: 3\n")
    (recipes / "tiny.yaml").write_text("size: 1\n")
    monkeypatch.setattr(sys.modules[__name__], "RECIPES", recipes)  # run_toy_recipe's presets
    command = recipe_command(
        recipes, f"{__name__}:run_toy_recipe", stages="data, train", example="size=2"
    )
    main = command_line("difforge-toy", "toy", [command])
    assert main(["recipe", "tiny", "--out", str(tmp_path / "a"), "size=5", "--stages", "data"]) == 0
    record = json.loads((tmp_path / "a" / "recipe.json").read_text())
    assert record["config"]["size"] == 5 and (tmp_path / "a" / "1-data" / ".done").is_file()
    assert not (tmp_path / "a" / "2-train").exists()
    assert capsys.readouterr().out.splitlines()[-1].startswith("data: ")
    assert main(["recipe", "--out", str(tmp_path / "b")]) == 0  # no name: the default recipe
    assert json.loads((tmp_path / "b" / "recipe.json").read_text())["config"]["size"] == 3
    assert main(["recipe", "huge", "--out", str(tmp_path / "c")]) == 2
    assert "no preset 'huge'" in capsys.readouterr().err


def test_a_recipe_book_loads_the_named_recipe_and_records_its_name(tmp_path: Path) -> None:
    from difforge.core.recipe import RecipeBook

    (tmp_path / "default.yaml").write_text("size: 4\n")
    book = RecipeBook("toy", ToyRecipe, tmp_path, lambda recipe, device: _stages([]))
    assert book.load(None, ["size=6"]) == ToyRecipe(size=6)
    folders = book.run(None, tmp_path / "run", overrides=["size=6"], stages=["data"])
    record = json.loads((tmp_path / "run" / "recipe.json").read_text())
    assert record == {"recipe": "toy/default", "config": {"version": 1, "size": 6}}
    assert list(folders) == ["data"]
