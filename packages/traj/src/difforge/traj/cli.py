"""Road-network trips with TrajDLM: prepare, match, train, generate, evaluate, bench.

Each command is a :class:`~difforge.core.cli.Command`: ``_add_<name>(parser)`` registers its flags,
``_<name>(args)`` declares its inputs and outputs in an :class:`~difforge.core.outputs.OutputPlan`,
checks them before any heavy work, then runs.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from difforge.core.cli import (
    MAX_SEED,
    Command,
    add_config_arguments,
    add_device_argument,
    add_overwrite_argument,
    add_seed_argument,
    command_line,
    echo,
    float_arg,
    int_arg,
)
from difforge.core.errors import UserError
from difforge.core.outputs import OutputPlan
from difforge.core.recipe import recipe_command
from difforge.traj import RECIPE_PRESETS, TRAIN_PRESETS

# Trips per command unless --max-trips says more: beyond this a mistyped count (1e6 for 1e3) would
# hold the machine for hours and write gigabytes.
MAX_TRIPS = 100_000
MAX_BATCH = 65_536
MAX_THREADS = 1024

_threads = int_arg(0, MAX_THREADS)
_batch = int_arg(1, MAX_BATCH)


def _add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=_threads, default=0, help="torch CPU threads (0: torch's)")


def _set_threads(threads: int) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def _add_trip_count(p: argparse.ArgumentParser, help_text: str, **kwargs: Any) -> None:
    p.add_argument("--n", type=int_arg(1), help=help_text, **kwargs)
    p.add_argument(
        "--max-trips",
        type=int_arg(1),
        default=MAX_TRIPS,
        help="refuse an --n above this (a guard against a mistyped count); raise it to go further",
    )


def _check_trip_count(n: int, max_trips: int) -> None:
    if n > max_trips:
        raise UserError(
            f"--n {n} is more than --max-trips {max_trips}; pass --max-trips {n} to generate "
            "that many"
        )


def _reads_dataset(plan: OutputPlan, flag: str, data_dir: Path, *splits: str) -> None:
    """The road network of a dataset folder and its ``<split>.csv`` trip files are inputs."""
    from difforge.traj.data.hoser import ROADMAP_FILES

    for name in (*ROADMAP_FILES, *(f"{split}.csv" for split in splits)):
        plan.reads(flag, data_dir / name)


def _reads_model(plan: OutputPlan, flag: str, model_dir: Path) -> None:
    """Every file of a model folder is an input (the weights, config.json, the roadmap copy)."""
    from difforge.traj.model import CONFIG_NAME, WEIGHTS_NAME

    _reads_dataset(plan, flag, model_dir)
    plan.reads(flag, model_dir / CONFIG_NAME).reads(flag, model_dir / WEIGHTS_NAME)


# ----------------------------------------------------------------------------------------------
# prepare, match


def _add_prepare(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--osm", type=Path, required=True, help="OSM XML (.osm), .osm.pbf or .graphml file"
    )
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="dataset folder to create (roadmap.geo, roadmap.rel); an existing one is refused",
    )
    p.add_argument("--mode", choices=("drive", "bike", "walk"), default="drive")
    p.add_argument(
        "--uturn",
        choices=("dead_end", "forbid", "allow"),
        default="dead_end",
        help="may a segment be followed by its own reverse: only at dead ends, never, always",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --out folder WHOLE: its trip files (train/val/test.csv) go too, "
        "since their segment ids belong to the old road network",
    )


def _prepare(args: argparse.Namespace) -> None:
    from difforge.traj.data.prepare import prepare_roadmap

    plan = OutputPlan(overwrite=args.overwrite)
    plan.reads("--osm", args.osm).writes_folder("--out", args.out)
    plan.check()
    _graph, lines = prepare_roadmap(
        args.osm, args.out, mode=args.mode, uturn=args.uturn, overwrite=args.overwrite
    )
    echo(*lines)


def _add_convert_libcity(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--libcity", type=Path, required=True, help="LibCity folder with NAME.geo/.rel/.dyna"
    )
    p.add_argument("--name", help="NAME of the atomic files (default: the folder's name)")
    p.add_argument("--out", type=Path, required=True, help="HOSER dataset folder to create")
    add_seed_argument(p)  # of the random 80/10/10 train/val/test split
    add_overwrite_argument(p)


def _convert_libcity(args: argparse.Namespace) -> None:
    from difforge.core.io import atomic_dir
    from difforge.traj.data.libcity import libcity_to_hoser

    plan = OutputPlan(overwrite=args.overwrite)
    plan.reads("--libcity", args.libcity).writes_folder("--out", args.out)
    plan.check()
    with atomic_dir(args.out, overwrite=args.overwrite) as tmp:
        lines = libcity_to_hoser(args.libcity, tmp, args.name, args.seed)
    echo(f"wrote {args.out}:", *lines)


def _add_match(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gps", type=Path, required=True, help="GPS file: .csv, .csv.gz or .gpx")
    p.add_argument("--data", type=Path, required=True, help="dataset folder with roadmap.geo/.rel")
    p.add_argument("--out", type=Path, required=True, help="output CSV (HOSER trajectory format)")
    p.add_argument(
        "--gps-noise",
        type=float_arg(0, 1000, low_open=True),
        default=10.0,
        help="GPS error standard deviation in metres (> 0, at most 1000)",
    )


def _match(args: argparse.Namespace) -> None:
    from difforge.traj.data.matching import match_gps_file

    plan = OutputPlan()
    plan.reads("--gps", args.gps)
    _reads_dataset(plan, "--data", args.data)
    plan.writes_file("--out", args.out, suffixes=(".csv",))
    plan.check()
    echo(*match_gps_file(args.gps, args.data, args.out, gps_noise_m=args.gps_noise))


# ----------------------------------------------------------------------------------------------
# train


def _add_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, required=True, help="HOSER-layout dataset folder")
    p.add_argument("--out", type=Path, required=True, help="model folder to create")
    p.add_argument(
        "--resume", action="store_true", help="continue from OUT/train's last checkpoint"
    )
    add_overwrite_argument(p)
    _add_threads(p)
    add_config_arguments(p, TRAIN_PRESETS)


def _train(args: argparse.Namespace) -> None:
    from difforge.core.cli import config_from_args
    from difforge.traj.train import TrajTrainConfig, describe, train

    if args.resume and args.overwrite:
        raise UserError("--resume continues the run in --out, --overwrite replaces it: give one")
    config = config_from_args(TrajTrainConfig, args)
    plan = OutputPlan(overwrite=args.overwrite)
    _reads_dataset(plan, "--data", args.data, "train")
    if not args.resume:  # resuming writes into the run's own folder
        plan.writes_folder("--out", args.out)
    plan.check()
    if args.overwrite and args.out.is_dir():
        from difforge.core.io import exclusive_lock

        with exclusive_lock(args.out / "train", "training run"):  # never under a running one
            shutil.rmtree(args.out)
    _set_threads(args.threads)
    echo(*describe(train(args.data, args.out, config, resume=args.resume)))


# ----------------------------------------------------------------------------------------------
# generate


def _add_generate(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", default="default", help="model folder, or 'default' (the shipped one)"
    )
    _add_trip_count(p, "number of trips, OD pairs and departures drawn from the training data")
    p.add_argument(
        "--od",
        type=Path,
        help="CSV of your own requests instead of --n: origin_id,destination_id (segment ids) or "
        "origin_lon,origin_lat,destination_lon,destination_lat (snapped to the nearest segment), "
        "optional departure_time (ISO 8601, UTC)",
    )
    add_seed_argument(p)
    p.add_argument("--out", type=Path, required=True, help="output CSV (rid_list, time_list, ...)")
    p.add_argument("--geojson", type=Path, help="also write a GeoJSON FeatureCollection")
    p.add_argument("--gpx", type=Path, help="also write GPX tracks with timestamps")
    p.add_argument("--png", type=Path, help="also draw the trips over the road network")
    p.add_argument(
        "--data",
        type=Path,
        help="dataset folder for the OD pairs; None: the model's training data",
    )
    add_device_argument(p)
    p.add_argument(
        "--batch-size", type=_batch, help="trips per batch; None: the model's (shipped: 256)"
    )
    p.add_argument(
        "--steps-per-block",
        type=int_arg(1, 1024),
        help="denoising steps per block; None: the model's (shipped: 2)",
    )
    p.add_argument(
        "--threshold",
        type=float_arg(0, 1, low_open=True),
        help="also commit every token above this confidence, in (0, 1]; None: the model's "
        "(shipped: None)",
    )
    p.add_argument(
        "--temperature",
        type=float_arg(0, 100),
        help="0 decodes greedily, > 0 samples; None: the model's (shipped: 1.0); the greedy "
        "setting shipped before: --temperature 0 --guidance 0.5 max_detour=14",
    )
    p.add_argument(
        "--guidance",
        type=float_arg(0, 100),
        help="classifier-free guidance w in u + (w+1)(c-u), 0 = off; None: the model's "
        "(shipped: 0.0)",
    )
    _add_threads(p)
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="other sampling settings, e.g. max_detour=6 (shipped: 6) decoding=autoregressive "
        "constrained=false",
    )


def _generate(args: argparse.Namespace) -> None:
    from difforge.core.cli import resolve_device
    from difforge.core.config import apply_overrides
    from difforge.core.io import atomic_paths
    from difforge.traj.data.requests import read_trip_ends, sample_od_requests
    from difforge.traj.export import draw_map, write_generated_csv, write_geojson, write_gpx
    from difforge.traj.model import TrajDLM, model_data_dir, read_traj_meta, resolve_model_dir
    from difforge.traj.pipeline import read_od_csv
    from difforge.traj.sample import TrajectorySampler

    if (args.n is None) == (args.od is None):
        raise UserError("give --n (requests drawn from the training data) or --od FILE.csv")
    if args.od is not None and args.data is not None:
        raise UserError("--data is where --n draws requests from: not used with --od")
    if args.n is not None:
        _check_trip_count(args.n, args.max_trips)
    model_dir = resolve_model_dir(args.model)
    plan = OutputPlan()
    _reads_model(plan, "--model", model_dir)
    if args.od is None:
        data_dir = model_data_dir(read_traj_meta(model_dir), args.data)
        plan.reads(
            "--data" if args.data else "--data (the model's dataset)", data_dir / "train.csv"
        )
    else:
        plan.reads("--od", args.od)
    plan.writes_file("--out", args.out, suffixes=(".csv",))
    plan.writes_file("--geojson", args.geojson, suffixes=(".geojson", ".json"))
    plan.writes_file("--gpx", args.gpx, suffixes=(".gpx",))
    plan.writes_file("--png", args.png, suffixes=(".png",))
    plan.check()
    device = resolve_device(args.device)

    model = TrajDLM.from_pretrained(model_dir)
    flags = {
        "batch_size": args.batch_size,
        "steps_per_block": args.steps_per_block,
        "threshold": args.threshold,
        "temperature": args.temperature,
        "guidance_scale": args.guidance,
    }
    overrides = [*args.overrides, *(f"{k}={v}" for k, v in flags.items() if v is not None)]
    sampler = TrajectorySampler(model, apply_overrides(model.sampling, overrides), device)
    _set_threads(args.threads)
    if args.od is None:
        train_ends = read_trip_ends(data_dir / "train.csv", sampler.graph.num_segments)
        requests = sample_od_requests(train_ends, args.n, args.seed)
        source = f"OD pairs from {data_dir / 'train.csv'}"
    else:
        requests = read_od_csv(args.od, sampler.graph)
        _check_trip_count(len(requests), args.max_trips)
        source = f"requests from {args.od}"
    writers = [
        (args.out, lambda path: write_generated_csv(path, trips)),
        (args.geojson, lambda path: write_geojson(path, sampler.graph, trips)),
        (args.gpx, lambda path: write_gpx(path, sampler.graph, trips)),
        (args.png, lambda path: draw_map(path, sampler.graph, trips)),
    ]
    writers = [(path, write) for path, write in writers if path is not None]
    # Every output appears at the end, together, or none does (a failure or Ctrl-C midway).
    with atomic_paths([path for path, _ in writers]) as temporary:
        trips = sampler.generate(requests, seed=args.seed)
        for tmp, (_, write) in zip(temporary, writers):
            write(tmp)
    echo(
        f"generated {len(trips)} trips in {trips.seconds:.1f} s ({trips.trajectories_per_second:.1f} "
        f"trips/s on {trips.device}, batch {trips.batch_size}); {source}",
        f"fully legal: {trips.fully_legal.mean():.2%}, "
        f"destination reached: {trips.reached.mean():.2%}",
        "wrote " + ", ".join(str(path) for path, _ in writers),
    )


# ----------------------------------------------------------------------------------------------
# evaluate, bench


def _add_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, required=True, help="dataset folder with test.csv")
    p.add_argument("--generated", type=Path, required=True, help="generated HOSER CSV")
    p.add_argument("--out", type=Path, required=True, help="output JSON")
    p.add_argument("--city", help="use HOSER's grid box: Beijing, Porto or San Francisco")


def _evaluate(args: argparse.Namespace) -> None:
    from difforge.traj.evaluate import evaluate, format_markdown_table
    from difforge.traj.route_diversity import DIVERSITY_KEYS

    plan = OutputPlan()
    plan.reads("--generated", args.generated)
    _reads_dataset(plan, "--data", args.data, "test")
    plan.writes_file("--out", args.out, suffixes=(".json",))
    plan.check()
    result = evaluate(args.data, args.generated, args.out, city=args.city, progress=True)
    echo(
        format_markdown_table({Path(args.generated).name: result}),
        format_markdown_table({Path(args.generated).name: result}, DIVERSITY_KEYS),
        f"{result['num_generated']} generated vs {result['num_real']} test trips, "
        f"{result['num_od_pairs']} OD-matched pairs; wrote {args.out}",
    )


def _add_bench(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="default", help="TrajDLM model folder or 'default'")
    p.add_argument("--ar-model", help="model trained with model.block_size=1 (AR baseline)")
    p.add_argument("--hoser-model", type=Path, help="saved HOSER-style model (else trained here)")
    p.add_argument(
        "--hoser-save",
        type=Path,
        help="folder to save the HOSER-style model trained here in; None: OUT_DIR/hoser_model",
    )
    p.add_argument("--data", type=Path, help="dataset folder; None: the model's data")
    p.add_argument("--out-dir", type=Path, required=True, help="folder for bench.json, bench.md")
    _add_trip_count(p, "trips per method and seed (HOSER: 5000)", default=5000)
    p.add_argument("--seeds", type=int_arg(0, MAX_SEED), nargs="+", default=[0])
    p.add_argument("--batch-size", type=_batch, default=256)
    p.add_argument(
        "--methods",
        nargs="+",
        help="subset of: real_trips (reference: the training trips themselves) shortest_path "
        "modal_route markov hoser ar_decoding trajdlm; None: all of them "
        "(BenchSettings.methods)",
    )
    p.add_argument("--ablations", action="store_true", help="also TrajDLM sampling ablations")
    p.add_argument(
        "--extra-model",
        action="append",
        default=[],
        metavar="LABEL=DIR",
        help="another trained model to score as its own row (repeatable)",
    )
    p.add_argument("--throughput-batches", type=_batch, nargs="*", default=[1, 16, 256, 4096])
    p.add_argument("--throughput-requests", type=int_arg(1, MAX_TRIPS), default=256)
    p.add_argument("--hoser-epochs", type=int_arg(1, 1000), default=25)
    _add_threads(p)
    add_device_argument(p)
    add_overwrite_argument(p)


def _bench(args: argparse.Namespace) -> None:
    from difforge.core.cli import resolve_device
    from difforge.traj.bench import run_bench, write_bench
    from difforge.traj.bench_settings import BenchSettings
    from difforge.traj.model import TrajDLM, model_data_dir, read_traj_meta, resolve_model_dir

    _check_trip_count(args.n, args.max_trips)
    model_dir = resolve_model_dir(args.model)
    data_dir = model_data_dir(read_traj_meta(model_dir), args.data)
    extra = {}
    for item in args.extra_model:
        label, sep, path = item.partition("=")
        if not sep or not label:
            raise UserError(f"--extra-model expects LABEL=DIR, got {item!r}")
        extra[label] = resolve_model_dir(path)
    ar_model_dir = resolve_model_dir(args.ar_model) if args.ar_model else None
    settings = BenchSettings(
        n=args.n,
        seeds=tuple(args.seeds),
        batch_size=args.batch_size,
        methods=tuple(args.methods or BenchSettings.methods),
        ablations=args.ablations,
        throughput_batches=tuple(args.throughput_batches),
        throughput_requests=args.throughput_requests,
        hoser_epochs=args.hoser_epochs,
        device=str(resolve_device(args.device)),
        extra_models=extra,
    )
    plan = OutputPlan(overwrite=args.overwrite)
    for flag, folder in [("--model", model_dir), ("--ar-model", ar_model_dir)] + [
        ("--extra-model", d) for d in extra.values()
    ]:
        if folder is not None:
            _reads_model(plan, flag, folder)
    plan.reads("--hoser-model", args.hoser_model)
    _reads_dataset(plan, "--data", data_dir, "train", "test")
    plan.writes_file("--out-dir", args.out_dir / "bench.json")
    plan.writes_file("--out-dir", args.out_dir / "bench.md")
    if args.hoser_save is not None and args.hoser_model is None:
        plan.writes_folder(
            "--hoser-save", args.hoser_save
        )  # OUT_DIR/hoser_model is the bench's own
    plan.check()

    _set_threads(args.threads)
    model = TrajDLM.from_pretrained(model_dir)
    command = "difforge-traj " + shlex.join(sys.argv[1:])
    results = run_bench(
        data_dir,
        model,
        settings,
        ar_model_dir=ar_model_dir,
        hoser_model_dir=args.hoser_model,
        hoser_save_dir=None
        if args.hoser_model
        else args.hoser_save or args.out_dir / "hoser_model",
        on_progress=lambda partial: write_bench(partial, args.out_dir, command),
    )
    write_bench(results, args.out_dir, command)
    echo((args.out_dir / "bench.md").read_text(encoding="utf-8"))


COMMANDS = [
    Command(
        "prepare",
        "road network (OSM XML, .osm.pbf, GraphML) -> roadmap.geo + roadmap.rel",
        _add_prepare,
        _prepare,
        description="Keep the roads of one travel mode, keep the largest strongly connected part, "
        "and write the HOSER/LibCity road network files into a new dataset folder.",
    ),
    Command(
        "convert-libcity",
        "LibCity atomic files (.geo/.rel/.dyna) -> a HOSER dataset folder",
        _add_convert_libcity,
        _convert_libcity,
        description="Read a LibCity data set (map-matched .dyna) and write roadmap.geo/.rel and "
        "a random 80/10/10 train/val/test split as HOSER CSVs, which every --data option reads.",
    ),
    Command(
        "match",
        "map-match raw GPS (CSV or GPX) onto a dataset's road network -> HOSER CSV",
        _add_match,
        _match,
        description="Read GPS traces (CSV with lon/lat[/time][/traj_id] columns, or GPX), drop "
        "unusable fixes, match them onto the segments of DIR/roadmap.geo and write "
        "rid_list/time_list.",
    ),
    Command(
        "train",
        "train TrajDLM on a dataset folder (roadmap.geo/.rel + train.csv)",
        _add_train,
        _train,
        description="Train the block-diffusion trajectory model with the road-network encoder; "
        "checkpoints and tensorboard logs go to OUT/train, the final (EMA) model to OUT. The "
        "seed is the config's train.seed.",
    ),
    Command(
        "generate",
        "generate trips with a trained model -> HOSER CSV (+ GeoJSON, GPX, PNG map)",
        _add_generate,
        _generate,
        description="Draw N OD pairs and departure times from the training set of the model's "
        "data (HOSER's gene.py), or read your own requests with --od, and generate one trip for "
        "each. Sampling settings default to the model folder's (those of the shipped model are "
        "given).",
    ),
    Command(
        "evaluate",
        "score generated trips against DIR/test.csv with the HOSER protocol",
        _add_evaluate,
        _evaluate,
        description="JSD of distance, radius of gyration and durations; Hausdorff, DTW and EDR on "
        "OD-matched pairs (200 m grid); legality and destination-reached shares.",
    ),
    Command(
        "bench",
        "compare every method on the same OD requests (metrics + throughput)",
        _add_bench,
        _bench,
        description="Shortest path, Markov chain, HOSER-style search, autoregressive decoding "
        "and TrajDLM on the same requests, scored by the HOSER protocol; writes bench.json and "
        "bench.md.",
    ),
]

RECIPE_COMMAND = recipe_command(
    RECIPE_PRESETS,
    "difforge.traj.recipe:run_named_recipe",
    stages="data -> train -> baselines -> evaluate",
    example="train.train.steps=500 evaluate.n=1000",
)
COMMANDS.append(RECIPE_COMMAND)

main = command_line("difforge-traj", __doc__.splitlines()[0], COMMANDS)


if __name__ == "__main__":
    sys.exit(main())
