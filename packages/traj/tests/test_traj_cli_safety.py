"""``difforge-traj`` never loses a user's data and never shows a traceback: Ctrl-C in every
command, outputs onto inputs, out-of-range numbers, corrupt inputs (the audit cases of issue 14).

Ctrl-C is pressed for real (SIGINT to a separate process) in ``train`` and ``generate``, and raised
from inside the work of every command in process; both must print exactly ``error: interrupted``,
exit 130 and leave no partial or temporary file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from difforge.core.cli import load_preset
from difforge.core.io import exclusive_lock
from difforge.core.testing import interrupt_command, tree_snapshot
from difforge.traj import TRAIN_PRESETS
from difforge.traj import bench as bench_module
from difforge.traj import evaluate as evaluate_module
from difforge.traj.cli import main
from difforge.traj.data import hoser
from difforge.traj.data.hoser import read_roadmap, read_trajectories
from difforge.traj.model import TrajDLM
from difforge.traj.train import TrajTrainConfig

CLI = "difforge.traj.cli"


def exit_code(args: list[str | Path]) -> int:
    """``main(args)``'s exit code (usage errors included: the core returns 2 for them)."""
    return main([str(a) for a in args])


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def leftovers(folder: Path) -> list[Path]:
    """Temporary files or folders of the core's atomic writers under ``folder``."""
    return [p for p in folder.rglob("*") if p.name.endswith((".tmp", ".old"))]


@pytest.fixture
def gps_csv(dataset, tmp_path):
    """A GPS trace (lon, lat) along the first training trip of the toy city."""
    graph = read_roadmap(dataset)
    rids = read_trajectories(dataset / "train.csv", graph).rids[0]
    path = tmp_path / "trace.csv"
    rows = [f"{lon},{lat}" for rid in rids for lon, lat in graph.coords[rid]]
    path.write_text("lon,lat\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------------
# Ctrl-C


def test_ctrl_c_during_training_is_one_line_and_leaves_no_model(dataset, tmp_path):
    out = tmp_path / "model"
    args = ["train", "--data", dataset, "--out", out, "--config", "tiny", "train.steps=100000"]
    result = interrupt_command(CLI, [*args, "train.ckpt_every=0"], lambda: (out / "train").is_dir())
    assert result.returncode == 130, result.stderr
    assert result.stderr == "error: interrupted\n"
    assert not (out / "config.json").exists() and not (out / "model.safetensors").exists()
    assert not leftovers(tmp_path)


def test_ctrl_c_during_generation_is_one_line_and_writes_nothing(trained, tmp_path):
    out, png = tmp_path / "gen.csv", tmp_path / "gen.png"
    args = ["generate", "--model", trained, "--n", "5000", "--out", out, "--png", png]
    result = interrupt_command(
        CLI, [*args, "--device", "cpu"], lambda: bool(list(tmp_path.glob(".gen.csv.*.tmp")))
    )
    assert result.returncode == 130, result.stderr
    assert result.stderr == "error: interrupted\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def _interrupt(*_args, **_kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize("command", ["match", "evaluate", "bench"])  # prepare: data_network
def test_ctrl_c_in_every_command_is_one_line(
    command, dataset, trained, gps_csv, tmp_path, capsys, monkeypatch
):
    out_dir = tmp_path / "outputs"
    out_dir.mkdir()
    if command == "match":
        monkeypatch.setattr(hoser, "format_rid_list", _interrupt)  # while the CSV is written
        args = ["match", "--gps", gps_csv, "--data", dataset, "--out", out_dir / "m.csv"]
    elif command == "evaluate":
        monkeypatch.setattr(evaluate_module, "evaluate_trajectories", _interrupt)
        generated = dataset / "val.csv"
        args = [
            "evaluate",
            "--data",
            dataset,
            "--generated",
            generated,
            "--out",
            out_dir / "e.json",
        ]
    else:
        monkeypatch.setattr(bench_module, "run_bench", _interrupt)
        args = ["bench", "--model", trained, "--out-dir", out_dir, "--n", "5"]
    before = tree_snapshot(dataset)
    assert exit_code(args) == 130
    assert capsys.readouterr().err == "error: interrupted\n"
    assert list(out_dir.iterdir()) == [] and tree_snapshot(dataset) == before


def test_match_writes_a_hoser_csv_when_not_interrupted(dataset, gps_csv, tmp_path, capsys):
    out = tmp_path / "matched.csv"
    assert exit_code(["match", "--gps", gps_csv, "--data", dataset, "--out", out]) == 0
    assert "matched 1 of 1 traces" in capsys.readouterr().out
    assert len(read_trajectories(out, read_roadmap(dataset))) == 1


# ----------------------------------------------------------------------------------------------
# Outputs never destroy inputs


def test_generate_onto_the_training_file_of_its_requests_is_refused(
    trained, dataset, tmp_path, capsys
):
    before = tree_snapshot(dataset)
    train_csv = dataset / "train.csv"
    for extra in ([], ["--data", dataset]):  # the model's own dataset, or the one named
        args = ["generate", "--model", trained, "--n", "3", "--out", train_csv, *extra]
        assert exit_code(args) == 2
        assert "is the input --data" in one_line_error(capsys)
    args = ["generate", "--model", trained, "--n", "3", "--out", tmp_path / "ok.csv"]
    assert exit_code([*args, "--geojson", trained / "config.json"]) == 2
    assert "is the input --model" in one_line_error(capsys)
    assert tree_snapshot(dataset) == before and not (tmp_path / "ok.csv").exists()


def test_match_and_evaluate_onto_their_inputs_are_refused(dataset, gps_csv, tmp_path, capsys):
    gps_before = gps_csv.read_bytes()
    before = tree_snapshot(dataset)
    cases = [
        (["match", "--gps", gps_csv, "--data", dataset, "--out", gps_csv], "is the input --gps"),
        (
            ["match", "--gps", gps_csv, "--data", dataset, "--out", dataset / "roadmap.geo"],
            "expected a .csv file name",
        ),
        (
            ["evaluate", "--data", dataset, "--generated", gps_csv, "--out", gps_csv],
            "expected a .json file name",
        ),
    ]
    generated_json = tmp_path / "generated.json"  # a generated CSV under another suffix
    shutil.copyfile(dataset / "val.csv", generated_json)
    cases.append(
        (
            ["evaluate", "--data", dataset, "--generated", generated_json, "--out", generated_json],
            "is the input --generated",
        )
    )
    for args, message in cases:
        assert exit_code(args) == 2, args
        assert message in one_line_error(capsys), args
    assert gps_csv.read_bytes() == gps_before and tree_snapshot(dataset) == before
    assert generated_json.read_bytes() == (dataset / "val.csv").read_bytes()


def test_train_refuses_an_existing_folder_and_its_own_data(dataset, trained, tmp_path, capsys):
    before = tree_snapshot(trained)
    args = ["train", "--data", dataset, "--config", "tiny", "train.steps=2"]
    assert exit_code([*args, "--out", trained]) == 2
    assert "already exists; pass --overwrite" in one_line_error(capsys)
    assert tree_snapshot(trained) == before
    assert exit_code([*args, "--out", dataset, "--overwrite"]) == 2
    assert "holds the input --data" in one_line_error(capsys)
    assert exit_code([*args, "--out", tmp_path / "m", "--overwrite", "--resume"]) == 2
    assert "give one" in one_line_error(capsys)

    stale = tmp_path / "stale"
    (stale / "notes").mkdir(parents=True)
    (stale / "notes" / "old.txt").write_text("old run", encoding="utf-8")
    with exclusive_lock(stale / "train", "training run"):  # another run is training there
        assert exit_code([*args, "--out", stale, "--overwrite"]) == 2
        assert "in use by another training run" in one_line_error(capsys)
    assert (stale / "notes" / "old.txt").is_file()
    assert exit_code([*args, "--out", stale, "--overwrite"]) == 0
    assert (stale / "model.safetensors").is_file() and not (stale / "notes").exists()


def test_bench_refuses_an_existing_hoser_save_folder(trained, tmp_path, capsys):
    save = tmp_path / "mine"
    save.mkdir()
    (save / "keep.txt").write_text("mine", encoding="utf-8")
    args = ["bench", "--model", trained, "--out-dir", tmp_path / "b", "--hoser-save", save]
    assert exit_code([*args, "--methods", "hoser"]) == 2
    assert "--hoser-save" in one_line_error(capsys) and (save / "keep.txt").is_file()
    assert not (tmp_path / "b").exists()


# ----------------------------------------------------------------------------------------------
# Numbers


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--gps-noise", "-5"], "must be > 0"),
        (["--gps-noise", "nan"], "finite"),
        (["--gps-noise", "inf"], "finite"),
    ],
)
def test_match_gps_noise_is_range_checked(flags, message, dataset, gps_csv, tmp_path, capsys):
    args = ["match", "--gps", gps_csv, "--data", dataset, "--out", tmp_path / "m.csv", *flags]
    assert exit_code(args) == 2
    assert message in one_line_error(capsys)
    assert not (tmp_path / "m.csv").exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--seed", "-1"], "at least 0"),
        (["--seed", "1e23"], "expected an integer"),
        (["--seed", str(2**32)], "at most"),
        (["--n", "0"], "at least 1"),
        (["--n", "2.5"], "expected an integer"),
        (["--n", "100001"], "pass --max-trips 100001"),
        (["--n", "20", "--max-trips", "10"], "more than --max-trips 10"),
        (["--batch-size", "0"], "at least 1"),
        (["--batch-size", "10000000"], "at most"),
        (["--steps-per-block", "0"], "at least 1"),
        (["--threshold", "0"], "must be > 0"),
        (["--threshold", "1.5"], "<= 1"),
        (["--temperature", "-1"], ">= 0"),
        (["--temperature", "inf"], "finite"),
        (["--guidance", "nan"], "finite"),
        (["--guidance", "-0.5"], ">= 0"),
        (["--threads", "-1"], "at least 0"),
        (["guidance_scale=inf"], "guidance_scale"),
        (["temperature=inf"], "temperature"),
        (["batch_size=0"], "batch_size"),
    ],
)
def test_generate_numbers_are_range_checked(flags, message, trained, tmp_path, capsys):
    out = tmp_path / "gen.csv"
    args = ["generate", "--model", trained, "--out", out, *flags]
    if "--n" not in flags:
        args += ["--n", "3"]
    assert exit_code(args) == 2
    assert message in one_line_error(capsys)
    assert not out.exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--seeds", "0", "-1"], "at least 0"),
        (["--n", "1e23"], "expected an integer"),
        (["--n", "200000"], "--max-trips"),
        (["--hoser-epochs", "0"], "at least 1"),
        (["--throughput-batches", "0"], "at least 1"),
        (["--throughput-requests", "0"], "at least 1"),
        (["--batch-size", "-3"], "at least 1"),
    ],
)
def test_bench_numbers_are_range_checked(flags, message, trained, tmp_path, capsys):
    out = tmp_path / "bench"
    assert exit_code(["bench", "--model", trained, "--out-dir", out, *flags]) == 2
    assert message in one_line_error(capsys)
    assert not out.exists()


def test_the_trip_limit_can_be_raised(trained, tmp_path):
    out = tmp_path / "gen.csv"
    args = ["generate", "--model", trained, "--n", "12", "--max-trips", "12", "--out", out]
    assert exit_code([*args, "--device", "cpu", "--batch-size", "5"]) == 0
    assert len(read_trajectories(out, None)) == 12


def test_no_config_is_the_default_preset(dataset, tmp_path):
    """``train`` without --config and with ``--config default`` record the same config."""
    configs = []
    for name, extra in (("implicit", []), ("explicit", ["--config", "default"])):
        out = tmp_path / name
        args = ["train", "--data", dataset, "--out", out, *extra, "train.steps=1"]
        assert exit_code([*args, "model.hidden_size=32", "model.num_layers=1"]) == 0
        config = json.loads((out / "config.json").read_text())["training"]["config"]
        configs.append({**config, "train": {**config["train"], "out_dir": None}})
    assert configs[0] == configs[1]
    preset = load_preset(TrajTrainConfig, TRAIN_PRESETS, "default").train.batch_size
    assert configs[0]["train"]["batch_size"] == preset != TrajTrainConfig().train.batch_size


def test_generate_help_gives_the_shipped_models_sampling_defaults(capsys):
    assert exit_code(["generate", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    shipped = TrajDLM.from_pretrained("default").sampling
    flags = {
        "--batch-size": shipped.batch_size,
        "--steps-per-block": shipped.steps_per_block,
        "--threshold": shipped.threshold,
        "--temperature": shipped.temperature,
        "--guidance": shipped.guidance_scale,
    }
    for flag, value in flags.items():
        after = text[text.index(f"{flag} {flag[2:].upper().replace('-', '_')} ") :]
        assert after[after.index("(shipped: ") :].startswith(f"(shipped: {value})"), flag


# ----------------------------------------------------------------------------------------------
# Corrupt inputs


def _truncated_copy(dataset: Path, folder: Path, name: str, keep: float) -> Path:
    shutil.copytree(dataset, folder)
    data = (dataset / name).read_bytes()
    (folder / name).write_bytes(data[: int(len(data) * keep)])
    return folder


def test_corrupt_inputs_are_one_line_errors_naming_the_file(dataset, trained, tmp_path, capsys):
    gen, metrics = tmp_path / "gen.csv", tmp_path / "metrics.json"
    cases = []
    geo = _truncated_copy(dataset, tmp_path / "geo", "roadmap.geo", 0.37)
    cases.append((["train", "--data", geo, "--out", tmp_path / "m", "--config", "tiny"], geo))
    rel = _truncated_copy(dataset, tmp_path / "rel", "roadmap.rel", 0.5)
    rel_bytes = (rel / "roadmap.rel").read_bytes()
    (rel / "roadmap.rel").write_bytes(rel_bytes[: rel_bytes.rindex(b",") + 1])  # cut mid-row
    cases.append(
        (["evaluate", "--data", rel, "--generated", dataset / "val.csv", "--out", metrics], rel)
    )
    bad_rids = tmp_path / "bad_rids.csv"
    bad_rids.write_text('rid_list,time_list\n"3,4,x7",\n', encoding="utf-8")
    cases.append(
        (
            ["evaluate", "--data", dataset, "--generated", bad_rids, "--out", metrics],
            bad_rids,
        )
    )
    model = tmp_path / "cut_model"
    shutil.copytree(trained, model, ignore=shutil.ignore_patterns("train"))
    weights = (model / "model.safetensors").read_bytes()
    (model / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    cases.append((["generate", "--model", model, "--n", "3", "--out", gen], model))
    nested = tmp_path / "nested_model"
    shutil.copytree(trained, nested, ignore=shutil.ignore_patterns("train"))
    (nested / "config.json").write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    cases.append((["generate", "--model", nested, "--n", "3", "--out", gen], nested))
    not_xml = tmp_path / "trace.gpx"
    not_xml.write_text("lon,lat\n24.9,60.1\n", encoding="utf-8")
    cases.append((["match", "--gps", not_xml, "--data", dataset, "--out", gen], not_xml))
    for args, culprit in cases:
        assert exit_code(args) in (1, 2), args
        assert str(culprit) in one_line_error(capsys), args
    assert not gen.exists() and not metrics.exists() and not (tmp_path / "m").exists()
    assert not leftovers(tmp_path)
