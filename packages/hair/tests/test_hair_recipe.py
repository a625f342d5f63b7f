"""The training recipe: the tiny recipe end to end on the CPU through ``difforge-hair recipe``,
stage folders that hold what the next stage reads (a DiT run continuing another included), reuse
of finished stages, resume of an unfinished one, ``--stages``, and the default recipe against the
shipped model's records."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from difforge.core.cli import command_line
from difforge.core.config import to_dict
from difforge.core.errors import ConfigError, UserError
from difforge.core.recipe import RECIPE_FILE
from difforge.core.testing import check_recipe_launch, tree_snapshot
from difforge.hair.cli import RECIPE_COMMAND
from difforge.hair.model import DEFAULT_MODEL_DIR, HairModel
from difforge.hair.recipe import (
    _per_process,
    load_recipe,
    stage_config,
    style_counts,
    styles_folder,
)

recipe_main = command_line("difforge-hair", "", [RECIPE_COMMAND])
TINY_STAGES = ("data", "codec", "first", "more_styles", "turned", "evaluate")


def _stage_dirs(out: Path) -> dict[str, Path]:
    return {name: out / f"{i}-{name}" for i, name in enumerate(TINY_STAGES, start=1)}


def _style_seeds(folder: Path) -> list[int]:
    return [int(p.parent.name.removeprefix("style_")) for p in folder.glob("**/strands.npz")]


def test_tiny_recipe_end_to_end(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    folders = _stage_dirs(out)
    # --stages runs only those (overrides may follow the options).
    argv = ["tiny", "--out", str(out), "--device", "cpu", "evaluate.eval_points=800"]
    assert recipe_main(["recipe", *argv, "--stages", "data,codec"]) == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["1-data", "2-codec"]
    # The data stage holds the first 3 styles (the codec's and the first DiT's) inside the 5.
    data = folders["data"]
    assert sorted(_style_seeds(styles_folder(data, [3, 5], 3))) == [0, 1, 2]
    assert sorted(_style_seeds(styles_folder(data, [3, 5], 5))) == [0, 1, 2, 3, 4]
    # The run on turned heads has its own styles: the photo set, each head turned its own way.
    turned_styles = styles_folder(data, [4], 4, ("photo", 35.0))
    assert turned_styles.name == "styles_photo_yaw35" and turned_styles.parent == data
    assert sorted(_style_seeds(turned_styles)) == [0, 1, 2, 3]
    turned_params = [json.loads(p.read_text()) for p in turned_styles.glob("**/params.json")]
    assert {p["style"]["family"] for p in turned_params} >= {"short_crop", "frizzy"}
    assert len({p["camera"]["yaw"] for p in turned_params}) == 4
    metrics = json.loads((folders["codec"] / "codec" / "metrics.json").read_text())
    assert metrics["steps"] == 20 and metrics["held_out"]["position_mm"] > 0
    capsys.readouterr()

    # The rest reuses data and codec; each DiT run reads what the stages before it wrote.
    assert recipe_main(["recipe", *argv]) == 0
    log = capsys.readouterr().out
    assert "stage data: done before" in log and "stage codec: done before" in log
    assert all((folders[s] / ".done").is_file() for s in TINY_STAGES)
    first = HairModel.load(folders["first"] / "model")
    assert first.info["training"]["styles"] == 3 and first.info["training"]["init"] is None
    assert first.sampling.steps == 2 and first.sampling.ensemble == 2  # the recipe's sampling
    more = HairModel.load(folders["more_styles"] / "model")
    training = more.info["training"]
    assert (training["styles"], training["last_seed"]) == (5, 4)
    assert training["init"]["model"] == str(folders["first"] / "model")
    assert training["diffusion"]["steps"] == 6 and training["config"]["train"]["lr"] == 5e-4
    assert more.sampling == first.sampling  # a continued model keeps its sampling
    assert training["config"]["data"]["n_strands"] == 300  # the data stage's sample settings
    turned = HairModel.load(folders["turned"] / "model").info["training"]
    assert turned["init"]["model"] == str(folders["more_styles"] / "model")
    assert turned["config"]["data"]["style_set"] == "photo"
    assert turned["config"]["data"]["max_yaw"] == 35.0 and turned["styles"] == 4
    # Evaluation: the last run's model beside the baselines fitted on the 5 classic frontal
    # styles of the last run that trained on such styles (the test styles are those).
    test = json.loads((folders["evaluate"] / "test.json").read_text())
    assert set(test) == {"difforge_hair", "mean_groom", "retrieval"}
    model_protocol = test["difforge_hair"]["protocol"]
    assert model_protocol["model"] == str(folders["turned"] / "model")
    assert model_protocol["n_styles"] == 2 and model_protocol["n_eval_points"] == 800
    assert test["retrieval"]["protocol"]["n_train"] == 5
    validation = json.loads((folders["evaluate"] / "validation.json").read_text())
    assert [row["seed"] for row in validation["difforge_hair"]["per_style"]] == [1_001_000]
    assert (folders["evaluate"] / "test.md").read_text().startswith("| method |")
    recorded = json.loads((out / RECIPE_FILE).read_text())
    assert (
        recorded["recipe"] == "hair/tiny" and recorded["config"]["evaluate"]["eval_points"] == 800
    )

    # A re-run skips every finished stage and rewrites nothing.
    before = tree_snapshot(out)
    assert recipe_main(["recipe", *argv]) == 0
    log = capsys.readouterr().out
    assert all(f"stage {s}: done before" in log for s in TINY_STAGES)
    assert tree_snapshot(out) == before

    # An unfinished training stage runs again from its own checkpoints: nothing is trained or
    # encoded again, and the model comes out the same.
    cache = folders["more_styles"] / "model-run" / "textures.safetensors"
    encoded_at = cache.stat().st_mtime_ns
    assert training["diffusion"]["final_logs"]  # it trained: logs of its steps
    (folders["more_styles"] / ".done").unlink()
    assert recipe_main(["recipe", *argv, "--stages", "more_styles"]) == 0
    assert "stage more_styles: running" in capsys.readouterr().out
    resumed = HairModel.load(folders["more_styles"] / "model").info["training"]["diffusion"]
    assert resumed["steps"] == 6 and resumed["final_logs"] == {}  # no step ran again
    assert cache.stat().st_mtime_ns == encoded_at
    after = tree_snapshot(out)
    for name, digest in before.items():
        if name.startswith("4-more_styles/") and name.endswith((".safetensors", ".bin")):
            assert after[name] == digest, name

    # Another config for the same folder is refused in one line.
    assert recipe_main(["recipe", "tiny", "--out", str(out), "evaluate.n_test=3"]) == 2
    assert "another recipe config" in capsys.readouterr().err


def test_a_stage_needs_the_stages_before_it(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert recipe_main(["recipe", "tiny", "--out", str(out), "--stages", "more_styles"]) == 2
    assert "stage data" in capsys.readouterr().err and not (out / "4-more_styles").exists()
    assert recipe_main(["recipe", "tiny", "--out", str(out), "--stages", "train"]) == 2
    assert "unknown stage(s) train" in capsys.readouterr().err
    assert recipe_main(["recipe", "nonesuch", "--out", str(out)]) == 2
    assert "no preset 'nonesuch'" in capsys.readouterr().err


def test_no_recipe_name_is_the_default_recipe() -> None:
    assert load_recipe(None) == load_recipe("default")
    override = ["diffusion.train.log_every=7"]
    assert load_recipe(None, override) == load_recipe("default", override)
    # One override keeps the rest of the recipe's group (not the class defaults).
    assert load_recipe("default", override).diffusion.train.batch_size == 64


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        ("[{name: a, init_from: b}, {name: b}]", "init_from"),
        ("[{name: a}, {name: b, init_from: a, overrides: [model.num_layers=3]}]", "model and"),
        ("[{name: a}, {name: a}]", "unique names"),
        ("[{name: codec}]", "name"),
        (  # the DiT itself would take 128² pictures, but the data stage renders 64²
            "[{name: a, overrides: ['model.encoder_channels=[8, 16, 16, 16]', data.image_size=128]}]",
            "to keep data.seed=0 and data.image_size=64",
        ),
        ("[{name: a, overrides: [train.nonesuch=1]}]", "diffusion_stages a"),
        # the baselines are fitted on classic frontal styles, which no run here reads
        ("[{name: a, overrides: [data.style_set=photo]}]", "classic frontal"),
        ("[{name: a, overrides: [data.max_yaw=90]}]", "max_yaw"),
    ],
)
def test_a_chain_of_runs_is_checked_before_anything_runs(stages: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_recipe("tiny", [f"diffusion_stages={stages}"])


def test_a_recipes_batch_is_global(monkeypatch) -> None:
    import difforge.core.train

    train = load_recipe("default").diffusion.train
    monkeypatch.setattr(
        difforge.core.train, "process_state", lambda: SimpleNamespace(num_processes=2)
    )
    assert _per_process(train).batch_size == train.batch_size // 2
    monkeypatch.setattr(
        difforge.core.train, "process_state", lambda: SimpleNamespace(num_processes=3)
    )
    with pytest.raises(UserError, match="does not split over 3 processes"):
        _per_process(train)


def test_the_default_recipe_is_the_shipped_models_lineage(monkeypatch) -> None:
    import difforge.core.train

    recipe = load_recipe("default")
    # codec -> candidate 3 -> 4a -> 4b -> 6 on ever more of the same styles (seeds from 0) ->
    # photo1, the same on conditioning maps (the shipped model) -> photo2 (not trained yet), on
    # the photo style set with turned heads.
    chain = [(s.name, s.init_from) for s in recipe.diffusion_stages]
    assert chain == [
        ("candidate3", ""),
        ("candidate4a", "candidate3"),
        ("candidate4b", "candidate4a"),
        ("candidate6", "candidate4b"),
        ("photo1", "candidate6"),
        ("photo2", "photo1"),
    ]
    assert style_counts(recipe) == [280, 980, 1960, 3920]
    assert style_counts(recipe, ("photo", 35.0)) == [3920]
    *configs, photo2 = [stage_config(recipe, s) for s in recipe.diffusion_stages]
    assert (photo2.data.style_set, photo2.data.max_yaw, photo2.data.condition) == (
        "photo",
        35.0,
        "maps",
    )
    assert (photo2.train.steps, photo2.train.batch_size, photo2.train.lr) == (6000, 128, 2e-4)
    assert all(c.data.style_set == "classic" and c.data.max_yaw == 0 for c in configs)
    assert [c.train.steps for c in configs] == [8568, 6500, 2076, 14000, 6000]
    assert [c.train.batch_size for c in configs] == [64, 256, 256, 256, 128]
    assert [c.train.lr for c in configs] == [5e-4, 7e-4, 4e-4, 4e-4, 3e-4]
    assert [c.train.warmup_steps for c in configs] == [300, 300, 200, 200, 200]
    # 4b's 4,300-step cosine was cut at 2,076: a whole cosine down to the lr it stopped at.
    assert [c.train.min_lr for c in configs] == [5e-5, 5e-5, 2.48e-4, 5e-5, 3e-5]
    assert [c.data.condition for c in configs] == ["rgb"] * 4 + ["maps"]
    # The last run, on one GPU, is the shipped folder's record of its training.
    shipped = json.loads((DEFAULT_MODEL_DIR / "config.json").read_text())
    monkeypatch.setattr(
        difforge.core.train, "process_state", lambda: SimpleNamespace(num_processes=1)
    )
    trained = to_dict(configs[-1])
    trained["train"]["batch_size"] = _per_process(configs[-1].train).batch_size
    record = shipped["training"]["config"]
    for key in ("model", "cond_dropout", "p_mean", "p_std", "channel_weights"):
        assert trained[key] == record[key], key
    for key in ("condition", "augment", "styles", "image_size"):
        assert trained["data"][key] == record["data"][key], key
    for key in ("steps", "batch_size", "lr", "min_lr", "warmup_steps", "betas", "weight_decay"):
        assert trained["train"][key] == record["train"][key], key
    for key in ("grad_clip", "ema_decay", "mixed_precision", "seed", "compile"):
        assert trained["train"][key] == record["train"][key], key
    assert shipped["training"]["styles"] == configs[-1].data.styles == 3920
    assert shipped["training"]["first_seed"] == recipe.data.seed == 0
    # The shipped sampling, given to the first run and kept by every continued one.
    assert to_dict(configs[0].sampling) == shipped["sampling"]
    # The codec: its architecture as shipped, on the first 280 styles.
    codec = json.loads((DEFAULT_MODEL_DIR / "codec" / "config.json").read_text())
    assert {k: codec[k] for k in to_dict(recipe.codec.model)} == to_dict(recipe.codec.model)
    assert (recipe.codec.data.styles, recipe.codec.train.steps) == (280, 6000)
    # Evaluation: 56 test and 28 validation styles, baselines on the last run's styles.
    evaluate = recipe.evaluate
    assert (evaluate.n_test, evaluate.n_validation, evaluate.first_validation) == (56, 28, 1000)
    assert evaluate.baselines and evaluate.eval_points == 100_000


def test_the_tiny_recipe_runs_as_two_processes_of_one_launch(tmp_path) -> None:
    """What `accelerate launch` does on two GPUs, as two gloo processes on the CPU."""
    check_recipe_launch("difforge.hair.recipe", tmp_path / "run")
