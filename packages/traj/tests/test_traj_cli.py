"""``difforge-traj`` end to end on a toy city: train a few steps -> generate -> evaluate -> bench,
the demo entry point, and one-line errors with no partial output for bad input (the toy dataset
and the model trained on it are fixtures of conftest.py)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd

from difforge.traj import model as model_module
from difforge.traj.cli import main
from difforge.traj.data.hoser import read_trajectories, write_roadmap
from difforge.traj.data.synthetic import synthetic_city
from difforge.traj.demo import run as run_demo
from difforge.traj.evaluate import METRIC_KEYS


def exit_code(args: list[str]) -> int:
    """``main(args)``'s exit code (usage errors included: the core returns 2 for them)."""
    return main(args)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_train_writes_a_loadable_model_with_checkpoints_and_logs(trained, dataset):
    meta = json.loads((trained / "config.json").read_text())
    assert meta["model_type"] == "difforge-traj" and meta["format_version"] == 2
    assert meta["sampling"]["max_detour"] is not None  # set from the training trips
    assert meta["model"]["num_segments"] == 42 and meta["model"]["block_size"] >= 4
    # No path of this machine in the model folder: the data folder is relative to it.
    assert not Path(meta["dataset"]["path"]).is_absolute()
    assert (trained / meta["dataset"]["path"]).resolve() == dataset.resolve()
    assert str(Path.home()) not in json.dumps(meta) and "/tmp" not in json.dumps(meta)
    assert meta["training"]["steps"] == 15
    assert (trained / "model.safetensors").stat().st_size > 0
    assert sorted(p.name for p in (trained / "train" / "checkpoints").iterdir()) == [
        "step_00000010",
        "step_00000015",
    ]
    assert list((trained / "train" / "logs").rglob("events.out.tfevents.*"))


def test_train_resumes_from_its_last_checkpoint(dataset, trained, tmp_path, capsys):
    out = tmp_path / "resumed"
    args = ["train", "--data", str(dataset), "--out", str(out), "--config", "tiny"]
    assert main([*args, "train.steps=6", "train.ckpt_every=3"]) == 0
    assert main([*args, "train.steps=6"]) == 2  # already trained: refuses to overwrite
    assert "already exists; pass --overwrite" in one_line_error(capsys)
    assert main([*args, "--resume", "train.steps=9", "train.ckpt_every=3"]) == 0
    assert json.loads((out / "config.json").read_text())["training"]["steps"] == 9


def test_generate_evaluate_round_trip(trained, dataset, tmp_path, capsys):
    csv_path, geojson, gpx, png = (
        tmp_path / "gen.csv",
        tmp_path / "gen.geojson",
        tmp_path / "gen.gpx",
        tmp_path / "gen.png",
    )
    code = main(
        [
            "generate",
            "--model",
            str(trained),
            "--n",
            "40",
            "--seed",
            "3",
            "--out",
            str(csv_path),
            "--geojson",
            str(geojson),
            "--gpx",
            str(gpx),
            "--png",
            str(png),
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "fully legal: 100.00%, destination reached: 100.00%" in printed

    frame = pd.read_csv(csv_path)
    assert list(frame.columns) == [
        "mm_id",
        "user_id",
        "traj_id",
        "rid_list",
        "time_list",
        "origin_id",
        "destination_id",
        "time_offsets_s",
    ]
    trips = read_trajectories(csv_path, None, on_invalid="error", require_times=True)
    assert len(trips) == 40
    for rids, origin, dest in zip(trips.rids, frame["origin_id"], frame["destination_id"]):
        assert rids[0] == origin and rids[-1] == dest

    features = json.loads(geojson.read_text())["features"]
    assert len(features) == 40 and features[0]["geometry"]["type"] == "LineString"
    assert features[0]["properties"]["rid_list"] == trips.rids[0].tolist()
    assert features[0]["properties"]["departure_time"].endswith("Z")
    track_points = ET.parse(gpx).getroot().findall(".//{*}trkpt")
    assert len(track_points) > 40 and track_points[0].find("{*}time") is not None
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    out_json = tmp_path / "metrics.json"
    assert (
        main(
            [
                "evaluate",
                "--data",
                str(dataset),
                "--generated",
                str(csv_path),
                "--out",
                str(out_json),
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    assert "| gen.csv |" in table
    metrics = json.loads(out_json.read_text())
    assert set(METRIC_KEYS) <= set(metrics)
    assert metrics["legal_transition_share"] == 1.0
    assert metrics["destination_reached_share"] == 1.0
    assert 0 <= metrics["jsd_distance"] <= np.log(2)


def test_generate_can_decode_autoregressively_and_without_guidance(trained, tmp_path, capsys):
    out = tmp_path / "ar.csv"
    args = ["generate", "--model", str(trained), "--n", "10", "--out", str(out)]
    assert main([*args, "decoding=autoregressive", "guidance_scale=0"]) == 0
    assert "destination reached: 100.00%" in capsys.readouterr().out
    assert len(pd.read_csv(out)) == 10


def test_bench_compares_every_method_on_the_same_requests(trained, dataset, tmp_path, capsys):
    out = tmp_path / "bench"
    code = main(
        [
            "bench",
            "--model",
            str(trained),
            "--out-dir",
            str(out),
            "--n",
            "20",
            "--seeds",
            "0",
            "1",
            "--batch-size",
            "8",
            "--methods",
            "real_trips",
            "shortest_path",
            "markov",
            "hoser",
            "ar_decoding",
            "trajdlm",
            "--ablations",
            "--throughput-batches",
            "1",
            "4",
            "--throughput-requests",
            "4",
            "--hoser-epochs",
            "1",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    results = json.loads((out / "bench.json").read_text())
    methods = results["methods"]
    assert {
        "shortest_path",
        "markov",
        "hoser",
        "ar_decoding (TrajDLM weights)",
        "trajdlm",
        "trajdlm (guidance w=0)",
    } <= set(methods)
    for name, method in methods.items():
        assert len(method["runs"]) == 2
        if "no topology constraint" not in name:
            assert method["summary"]["destination_reached_share"]["mean"] == 1.0, name
    reference = methods["real_trips"]["summary"]  # the training trips the requests came from
    assert reference["fully_legal_share"]["mean"] == 1.0
    assert reference["trajectories_per_second"] is None
    assert (
        reference["jsd_duration"]["mean"]
        != methods["shortest_path"]["summary"]["jsd_duration"]["mean"]
    )
    assert set(results["throughput_sweep"]["trajdlm"]) == {"1", "4"}
    assert set(results["throughput_sweep"]["trajdlm (4 steps per block)"]) == {"1", "4"}
    assert "trajdlm_over_hoser" in results["speedups"]
    assert "trajdlm (1 step per block) over hoser" in results["speedups"]
    assert results["card"].startswith("CPU")
    report = (out / "bench.md").read_text()
    assert "| trajdlm |" in report and "## Throughput" in report
    assert (out / "hoser_model" / "model.safetensors").is_file()


def test_bench_without_throughput_sizes_skips_the_sweep(trained, tmp_path):
    out = tmp_path / "bench"
    args = ["bench", "--model", str(trained), "--out-dir", str(out), "--n", "5"]
    assert main([*args, "--methods", "trajdlm", "--throughput-batches", "--device", "cpu"]) == 0
    results = json.loads((out / "bench.json").read_text())
    assert results["throughput_sweep"] == {} and "trajdlm" in results["methods"]


def test_demo_entry_point_writes_files_and_metrics(trained, tmp_path):
    sections = run_demo(tmp_path, model=trained, n=20)
    assert len(sections) == 2
    main_section = sections[0]
    assert main_section.metrics["legal_transition_share"] == 1.0
    assert main_section.metrics["destination_reached_share"] == 1.0
    for path in [*main_section.images, *main_section.files, *sections[1].files]:
        assert path.is_file() and path.stat().st_size > 0


def test_bad_input_gives_one_line_errors_and_no_partial_files(
    trained, dataset, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "x.csv"
    cases = [
        (
            ["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m")],
            "no such file",
        ),
        (
            ["train", "--data", str(dataset), "--out", str(tmp_path / "m"), "model.hiden_size=3"],
            "did you mean",
        ),
        (
            ["train", "--data", str(dataset), "--out", str(tmp_path / "m"), "--config", "huge"],
            "no preset 'huge'",
        ),
        (
            ["generate", "--model", str(tmp_path), "--n", "5", "--out", str(out)],
            "not a difforge-traj model folder",
        ),
        (["generate", "--model", str(trained), "--n", "0", "--out", str(out)], "at least 1"),
        (
            [
                "generate",
                "--model",
                str(trained),
                "--n",
                "5",
                "--out",
                str(out),
                "guidance_scale=-1",
            ],
            "guidance_scale",
        ),
        (
            ["generate", "--model", str(trained), "--n", "5", "--out", str(out), "--png", str(out)],
            "expected a .png file name",
        ),
        (
            [
                "bench",
                "--model",
                str(trained),
                "--out-dir",
                str(tmp_path / "b"),
                "--methods",
                "gan",
            ],
            "unknown method",
        ),
    ]
    for args, message in cases:
        assert exit_code(args) == 2, args
        assert message in one_line_error(capsys), args
    assert (
        not out.exists()
        and not (tmp_path / "m").exists()
        and not (tmp_path / "b" / "bench.json").exists()
    )

    other = tmp_path / "other_city"
    write_roadmap(synthetic_city(5, seed=1), other)
    assert (
        main(
            [
                "generate",
                "--model",
                str(trained),
                "--n",
                "5",
                "--out",
                str(out),
                "--data",
                str(other),
            ]
        )
        == 2
    )
    assert "not the one the model was trained on" in one_line_error(capsys)

    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text('rid_list,time_list\n"1,2,oops",\n')
    metrics = tmp_path / "m.json"
    assert (
        main(
            ["evaluate", "--data", str(dataset), "--generated", str(bad_csv), "--out", str(metrics)]
        )
        == 2
    )
    assert "malformed rid_list" in one_line_error(capsys)
    assert not metrics.exists()

    monkeypatch.setattr(model_module, "DEFAULT_MODEL_DIR", tmp_path / "weights" / "default")
    assert main(["generate", "--model", "default", "--n", "5", "--out", str(out)]) == 2
    message = one_line_error(capsys)
    assert (
        "default model is missing" in message and str(tmp_path / "weights" / "default") in message
    )
    assert not out.exists()
