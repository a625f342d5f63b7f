"""``difforge-traj recipe``: the tiny recipe end to end on a CPU, stage folders, re-runs, --stages,
and the default recipe checked against the shipped model's own record of its training."""

from __future__ import annotations

import json

import pytest

from difforge.core.cli import command_line
from difforge.core.config import to_dict
from difforge.core.testing import check_recipe_launch, imported_by, tree_snapshot
from difforge.traj.cli import RECIPE_COMMAND
from difforge.traj.data.hoser import read_trajectories
from difforge.traj.model import DEFAULT_MODEL_DIR, TrajDLM
from difforge.traj.recipe import load_recipe

main = command_line("difforge-traj", "", [RECIPE_COMMAND])


def _run(capsys, *args) -> tuple[int, str, str]:
    code = main(["recipe", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_tiny_recipe_runs_every_stage_and_a_rerun_reuses_them(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, stderr = _run(capsys, "tiny", "--out", out, "--device", "cpu")
    assert code == 0, stderr
    recipe = load_recipe("tiny")
    folders = {name: out / f"{i}-{name}" for i, name in enumerate(("data", "train"), start=1)}
    folders |= {"baselines": out / "3-baselines", "evaluate": out / "4-evaluate"}
    for name, folder in folders.items():
        assert (folder / ".done").is_file()
        assert f"{name}: {folder}" in stdout

    # data: a copy of the shipped dataset cut to the recipe's trip counts
    data = folders["data"] / "helsinki_drive_dua"
    for split, count in recipe.data.max_trips.items():
        assert len(read_trajectories(data / f"{split}.csv")) == count
    # train: a loadable model trained on that copy, with the recipe's settings
    model = TrajDLM.from_pretrained(folders["train"] / "model")
    assert model.meta["dataset"]["path"] == str(data.resolve())
    assert model.meta["training"]["steps"] == recipe.train.train.steps
    # baselines: the AR model, the ablation and the HOSER-style model the evaluation reads
    baselines = folders["baselines"]
    assert TrajDLM.from_pretrained(baselines / "ar").config.block_size == 1
    assert not TrajDLM.from_pretrained(
        baselines / "ablation_trajdlm_no_road_encoder"
    ).config.road_encoder
    assert (baselines / "hoser_model" / "config.json").is_file()
    # evaluate: every method, scored once per seed, from those models
    bench = json.loads((folders["evaluate"] / "bench.json").read_text())
    assert set(bench["methods"]) == {*recipe.evaluate.methods, "trajdlm (no road encoder)"}
    assert all(len(m["runs"]) == len(recipe.evaluate.seeds) for m in bench["methods"].values())
    assert bench["ar_model"] == str(baselines / "ar")
    assert bench["model"] == str(folders["train"] / "model")
    assert (folders["evaluate"] / "bench.md").is_file()

    before = tree_snapshot(out)
    code, stdout, _ = _run(capsys, "tiny", "--out", out, "--device", "cpu")
    assert code == 0
    assert stdout.count("done before") == 4
    assert tree_snapshot(out) == before


def test_stages_run_alone_in_order_and_training_resumes_from_its_checkpoints(tmp_path, capsys):
    out = tmp_path / "run"
    # overrides after the options, as in `difforge-traj recipe tiny --out DIR key=value`
    args = ["tiny", "--out", out, "--device", "cpu", "data.max_trips={train: 40, test: 20}"]
    code, _, _ = _run(capsys, *args, "--stages", "data")
    assert code == 0
    assert (out / "1-data" / ".done").is_file() and not (out / "2-train").exists()
    assert len(read_trajectories(out / "1-data" / "helsinki_drive_dua" / "train.csv")) == 40

    code, _, stderr = _run(capsys, *args, "--stages", "evaluate")
    assert code == 2 and "stage train" in stderr and "not done yet" in stderr

    code, _, stderr = _run(capsys, *args, "--stages", "train")
    assert code == 0, stderr
    model_dir = out / "2-train" / "model"
    weights = (model_dir / "model.safetensors").read_bytes()
    assert not (out / "3-baselines").exists()

    # A run stopped after its last checkpoint but before the export: the re-run resumes from
    # that checkpoint (no step left to train) and exports the same weights.
    for name in (".done", "model/model.safetensors", "model/config.json"):
        (out / "2-train" / name).unlink()
    code, _, stderr = _run(capsys, *args, "--stages", "train")
    assert code == 0, stderr
    assert (model_dir / "model.safetensors").read_bytes() == weights
    assert json.loads((model_dir / "config.json").read_text())["training"]["final_logs"] == {}

    code, _, stderr = _run(capsys, "tiny", "--out", out, "data.seed=1", "--stages", "data")
    assert code == 2 and "--overwrite" in stderr


@pytest.mark.parametrize(
    "override, key",
    [
        ("baselines.ar=[model.road_encoder=false]", "baselines.ar"),
        ("evaluate.device=cuda", "evaluate.device"),
        ("data.max_trips={tain: 5}", "max_trips"),
        ("evaluate.methods=[trajdlm]", "evaluate.methods"),
    ],
)
def test_bad_recipe_configs_fail_in_one_line_before_any_work(tmp_path, capsys, override, key):
    code, _, stderr = _run(capsys, "tiny", "--out", tmp_path / "run", override)
    assert code == 2 and key in stderr and len(stderr.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_default_recipe_is_the_shipped_models_training():
    recipe = load_recipe(None)
    assert recipe == load_recipe("default")
    shipped = json.loads((DEFAULT_MODEL_DIR / "config.json").read_text())
    trained = shipped["training"]["config"]
    assert recipe.data.dataset == shipped["dataset"]["name"]
    assert not recipe.data.max_trips
    # the architecture, apart from the sizes resolve_config reads from the data
    from_data = {"num_segments", "num_road_types", "block_size", "max_len"}
    model = {k: v for k, v in to_dict(recipe.train.model).items() if k not in from_data}
    assert model == {k: v for k, v in trained["model"].items() if k not in from_data}
    # every trainer setting that changes the weights (the others may change on a resume too)
    run_specific = {"out_dir", "tensorboard", "progress", "num_workers", "compile"}
    run_specific |= {"log_every", "ckpt_every", "keep_checkpoints"}
    train = {k: v for k, v in to_dict(recipe.train.train).items() if k not in run_specific}
    assert train == {k: v for k, v in trained["train"].items() if k not in run_specific}
    for key in ("cond_dropout", "duration_weight", "weighting", "detour_quantile"):
        assert getattr(recipe.train, key) == trained[key]
    # the sampling defaults saved with the model (max_detour is computed from the data)
    sampling = {k: v for k, v in to_dict(recipe.train.sampling).items() if k != "max_detour"}
    assert sampling == {k: v for k, v in shipped["sampling"].items() if k != "max_detour"}
    assert recipe.evaluate.n == 5000 and recipe.evaluate.seeds == (0, 1)
    assert set(recipe.baselines.ablations) == {
        "trajdlm (no road encoder)",
        "trajdlm (block size 16)",
    }


def test_the_recipe_command_imports_no_training_code():
    """Every ``difforge-traj`` command builds the parser that holds RECIPE_COMMAND."""
    assert (
        imported_by("difforge.traj.cli", ["torch", "difforge.traj.train", "difforge.traj.recipe"])
        == []
    )


def test_the_tiny_recipe_runs_as_two_processes_of_one_launch(tmp_path) -> None:
    """What `accelerate launch` does on two GPUs, as two gloo processes on the CPU."""
    check_recipe_launch("difforge.traj.recipe", tmp_path / "run")
