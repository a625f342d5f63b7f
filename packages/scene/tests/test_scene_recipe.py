"""The training recipe: the tiny recipe end to end on the CPU through ``difforge-scene recipe``,
stage folders that hold what the next stage reads, reuse of finished stages, ``--stages``, and the
default recipe equal to what the shipped model's run recorded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from difforge.core.cli import command_line
from difforge.core.config import to_dict
from difforge.core.recipe import RECIPE_FILE
from difforge.core.testing import check_recipe_launch, imported_by
from difforge.scene.cli import RECIPE_COMMAND
from difforge.scene.model import DEFAULT_MODEL_DIR, SceneModel
from difforge.scene.recipe import STAGES, load_recipe

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"
SHIPPED_RUN = RESULTS_DIR / "gpu_h200_2026-11-27.json"
recipe_main = command_line("difforge-scene", "", [RECIPE_COMMAND])


def _exit_code(argv: list[str]) -> int:
    """The command's exit code, also where argparse's usage errors leave by SystemExit."""
    try:
        return recipe_main(argv)
    except SystemExit as exc:
        return exc.code


def _stage_dirs(out: Path) -> dict[str, Path]:
    return {name: out / f"{i}-{name}" for i, name in enumerate(STAGES, start=1)}


def test_tiny_recipe_end_to_end(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    folders = _stage_dirs(out)
    # --stages runs only those (overrides may follow the options).
    argv = ["tiny", "--out", str(out), "--device", "cpu", "evaluate.seed=1"]
    assert recipe_main(["recipe", *argv, "--stages", "data,fit"]) == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["1-data", "2-fit"]
    assert all((folders[s] / ".done").is_file() for s in ("data", "fit"))
    for split in ("train", "test"):
        assert (folders["data"] / split / "dataset.json").is_file()
    fit1 = json.loads((folders["fit"] / "stage1" / "fit.json").read_text())
    fit2 = json.loads((folders["fit"] / "stage2" / "fit.json").read_text())
    assert (fit1["blocks"], fit2["blocks"]) == (6, 12)  # decoder_blocks, then every block
    assert fit2["stage"] == "planes only (frozen decoder)"
    assert fit2["data"] == str((folders["data"] / "train").resolve())
    assert (folders["fit"] / "stage2" / "planes.safetensors").is_file()
    capsys.readouterr()

    # The rest reuses data and fit, and every stage reads what the one before it wrote.
    assert recipe_main(["recipe", *argv]) == 0
    log = capsys.readouterr().out
    assert "stage data: done before" in log and "stage fit: done before" in log
    assert all((folders[s] / ".done").is_file() for s in STAGES)
    vae_metrics = json.loads((folders["vae"] / "vae" / "metrics.json").read_text())
    assert vae_metrics["steps"] == 20 and vae_metrics["held_out_blocks"] == 1
    model = SceneModel.load(folders["diffusion"] / "model")
    assert model.info["training"]["fits"] == [str((folders["fit"] / "stage2").resolve())]
    assert model.info["training"]["diffusion"]["steps"] == 20
    assert model.sampling.steps == 4  # the recipe's sampling, saved with the model
    result = json.loads((folders["evaluate"] / "eval.json").read_text())
    assert result["model"] == str(folders["diffusion"] / "model")
    assert result["protocol"]["n_generated"] == 4
    assert result["seams"]["pairs"] == 1
    methods = result["methods"]
    assert "retrieval (nearest training layout)" in methods
    assert "COV" in methods["latent diffusion (this model)"]["distribution"]
    recorded = json.loads((out / RECIPE_FILE).read_text())
    assert recorded["recipe"] == "scene/tiny" and recorded["config"]["evaluate"]["seed"] == 1
    assert json.loads((folders["vae"] / "stage.json").read_text())["device"] == "cpu"

    # A re-run skips every finished stage and rewrites nothing.
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert recipe_main(["recipe", *argv]) == 0
    log = capsys.readouterr().out
    assert all(f"stage {s}: done before" in log for s in STAGES)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before

    # An unfinished training stage resumes from its own checkpoint instead of training again.
    checkpoint = folders["diffusion"] / "model-run" / "checkpoints" / "step_00000020"
    written = checkpoint.stat().st_mtime_ns
    (folders["diffusion"] / ".done").unlink()
    assert recipe_main(["recipe", *argv, "--stages", "diffusion"]) == 0
    assert "trained 20/20 steps" in capsys.readouterr().out
    assert checkpoint.stat().st_mtime_ns == written
    assert (
        SceneModel.load(folders["diffusion"] / "model").info["training"]["diffusion"]["steps"] == 20
    )

    # The GPU launcher's report finds every stage's results in the run's folder.
    script = Path(__file__).resolve().parents[1] / "scripts" / "gpu_results.py"
    report = tmp_path / "report"
    subprocess.run(
        [sys.executable, str(script), "--run", str(out), "--out", str(report)], check=True
    )
    collected = json.loads((report / "results.json").read_text())
    assert [s["stage"] for s in collected["stages"]] == list(STAGES)
    assert {"fit_stage1", "fit_stage2", "vae", "model", "evaluation"} <= set(collected)
    assert "| latent diffusion (this model) |" in (report / "results.md").read_text()

    # Another config for the same folder is refused in one line.
    assert recipe_main(["recipe", "tiny", "--out", str(out), "evaluate.seed=2"]) == 2
    assert "another recipe config" in capsys.readouterr().err


def test_a_stage_needs_the_stages_before_it(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert recipe_main(["recipe", "tiny", "--out", str(out), "--stages", "vae"]) == 2
    assert "stage data" in capsys.readouterr().err and not (out / "3-vae").exists()
    assert _exit_code(["recipe", "tiny", "--out", str(out), "--stages", "train"]) == 2
    assert "unknown stage(s) train" in capsys.readouterr().err
    assert recipe_main(["recipe", "nonesuch", "--out", str(out)]) == 2
    assert "no preset 'nonesuch'" in capsys.readouterr().err


def test_no_recipe_name_is_the_default_recipe() -> None:
    assert load_recipe(None) == load_recipe("default")
    assert (
        load_recipe(None, ["vae.train.steps=7"]).vae.train
        == load_recipe("default", ["vae.train.steps=7"]).vae.train
    )


def test_the_default_recipe_is_the_shipped_models_run() -> None:
    recipe = load_recipe("default")
    run = json.loads(SHIPPED_RUN.read_text())
    # Data: the datasets the fits and the evaluation name.
    protocol = run["evaluation"]["protocol"]
    assert (recipe.data.train_seed, recipe.data.test_seed) == (
        protocol["train_seed"],
        protocol["test_seed"],
    )
    assert protocol["train"].endswith(f"({recipe.data.train_blocks} blocks)")
    assert f"({recipe.data.test_blocks} held-out blocks" in protocol["reference"]
    assert recipe.data.meshes == ()
    # Both fit stages' settings, block counts and iterations.
    stage1, stage2 = run["fit_stage1"], run["fit_stage2"]
    assert to_dict(recipe.fit.stage1) == stage1["config"]
    assert recipe.fit.decoder_blocks == stage1["blocks"]
    assert recipe.fit.stage2_iterations == stage2["config"]["iterations"]
    assert stage2["blocks"] == recipe.data.train_blocks
    assert f"reconstruction_first_{recipe.fit.run.eval_blocks}_blocks" in stage1
    # The VAE and the DiT: the shipped model folder's record (its limit included).
    vae = run["vae"]
    assert vae["planned_steps"] == recipe.vae.train.steps
    assert vae["latent_shape"][1] == recipe.vae.model.latent_channels
    assert vae["parameters"] == 1_907_496
    shipped = json.loads((DEFAULT_MODEL_DIR / "config.json").read_text())
    trained = to_dict(recipe.diffusion)
    for key in ("model", "train", "cond_dropout", "flips", "time_limit_s"):
        assert trained[key] == shipped["training"]["config"][key], key
    assert trained["sampling"] == shipped["sampling"]
    # Evaluation: 50 vs 50 blocks, the model's own sampling.
    assert recipe.evaluate.n_eval == protocol["n_generated"] == protocol["n_reference"]
    assert run["evaluation"]["sampling"] == {
        k: v for k, v in trained["sampling"].items() if k in run["evaluation"]["sampling"]
    }


def test_users_meshes_join_the_training_blocks(tmp_path) -> None:
    import trimesh

    room = trimesh.util.concatenate(
        [
            trimesh.creation.box((4.0, 0.1, 3.0)).apply_translation((2.0, -0.05, 1.5)),
            trimesh.creation.box((1.0, 0.8, 0.5)).apply_translation((2.0, 0.4, 0.35)),
        ]
    )
    room.export(tmp_path / "room.ply")
    out = tmp_path / "run"
    meshes = f"data.meshes=[{{path: {tmp_path / 'room.ply'}}}]"
    argv = ["recipe", "tiny", meshes, "--out", str(out), "--device", "cpu"]
    assert recipe_main([*argv, "--stages", "data,fit,vae"]) == 0
    folders = _stage_dirs(out)
    converted = json.loads((folders["data"] / "meshes" / "0" / "dataset.json").read_text())
    fit = json.loads((folders["fit"] / "meshes" / "0" / "fit.json").read_text())
    assert fit["blocks"] == converted["n_blocks"] >= 2  # 4 m x 3 m: two blocks along x
    assert fit["stage"] == "planes only (frozen decoder)"
    # The VAE trains on the mesh blocks and the 12 procedural ones.
    vae_metrics = json.loads((folders["vae"] / "vae" / "metrics.json").read_text())
    assert vae_metrics["blocks"] == 12 + fit["blocks"]


def test_the_recipe_command_names_the_recipe_stages_and_loads_no_model_code():
    assert " -> ".join(STAGES) in RECIPE_COMMAND.help
    assert imported_by("difforge.scene.cli", ["torch", "trimesh", "difforge.scene.recipe"]) == []


def test_the_tiny_recipe_runs_as_two_processes_of_one_launch(tmp_path) -> None:
    """What `accelerate launch` does on two GPUs, as two gloo processes on the CPU."""
    check_recipe_launch("difforge.scene.recipe", tmp_path / "run")
