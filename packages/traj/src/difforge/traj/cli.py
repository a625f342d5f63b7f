"""``difforge-traj``: one subcommand per task (prepare, match, train, generate, evaluate, bench).

To add a command, write ``_add_<name>(subparsers)`` that registers its arguments and sets
``func`` to a function taking the parsed namespace, and call it in :func:`build_parser`.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from difforge.core.errors import UserError

# The model commands import torch and friends lazily, so that `prepare` and `match` stay quick.


def _prepare(args: argparse.Namespace) -> None:
    from difforge.traj.data.prepare import prepare_roadmap

    _graph, lines = prepare_roadmap(args.osm, args.out, mode=args.mode, uturn=args.uturn)
    print("\n".join(lines))


def _add_prepare(subparsers) -> None:
    p = subparsers.add_parser(
        "prepare",
        help="road network (OSM XML, .osm.pbf, GraphML) -> roadmap.geo + roadmap.rel",
        description="Keep the roads of one travel mode, keep the largest strongly connected part, "
        "and write the HOSER/LibCity road network files.",
    )
    p.add_argument(
        "--osm", type=Path, required=True, help="OSM XML (.osm), .osm.pbf or .graphml file"
    )
    p.add_argument("--out", type=Path, required=True, help="output dataset folder")
    p.add_argument("--mode", choices=("drive", "bike", "walk"), default="drive")
    p.add_argument(
        "--uturn",
        choices=("dead_end", "forbid", "allow"),
        default="dead_end",
        help="may a segment be followed by its own reverse: only at dead ends (default), never, always",
    )
    p.set_defaults(func=_prepare)


def _match(args: argparse.Namespace) -> None:
    from difforge.traj.data.matching import match_gps_file

    lines = match_gps_file(args.gps, args.data, args.out, gps_noise_m=args.gps_noise)
    print("\n".join(lines))


def _add_match(subparsers) -> None:
    p = subparsers.add_parser(
        "match",
        help="map-match raw GPS (CSV or GPX) onto a dataset's road network -> HOSER CSV",
        description="Read GPS traces (CSV with lon/lat[/time][/traj_id] columns, or GPX), drop "
        "unusable fixes, match them onto the segments of DIR/roadmap.geo and write rid_list/time_list.",
    )
    p.add_argument("--gps", type=Path, required=True, help="GPS file: .csv, .csv.gz or .gpx")
    p.add_argument("--data", type=Path, required=True, help="dataset folder with roadmap.geo/.rel")
    p.add_argument("--out", type=Path, required=True, help="output CSV (HOSER trajectory format)")
    p.add_argument(
        "--gps-noise", type=float, default=10.0, help="GPS error std in metres (default 10)"
    )
    p.set_defaults(func=_match)


def _train(args: argparse.Namespace) -> None:
    from difforge.traj.train import describe, load_train_config, train

    _set_threads(args.threads)
    config = load_train_config(args.config, args.overrides)
    summary = train(args.data, args.out, config, resume=args.resume)
    print("\n".join(describe(summary)))


def _add_train(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train TrajDLM on a dataset folder (roadmap.geo/.rel + train.csv)",
        description="Train the block-diffusion trajectory model with the road-network encoder; "
        "checkpoints and tensorboard logs go to OUT/train, the final (EMA) model to OUT.",
    )
    p.add_argument("--data", type=Path, required=True, help="HOSER-layout dataset folder")
    p.add_argument("--out", type=Path, required=True, help="model folder to create")
    p.add_argument(
        "--config",
        default=None,
        help="YAML config file or preset name: tiny, small, default (default: default)",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue from OUT/train's last checkpoint"
    )
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="config overrides, e.g. train.steps=2000 model.block_size=16 model.road_encoder=false",
    )
    p.set_defaults(func=_train)


def _set_threads(threads: int) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def _load_sampler(args: argparse.Namespace):
    """The model of ``--model``, its dataset folder and a sampler with the CLI's settings."""
    from difforge.core.cli import resolve_device
    from difforge.core.config import apply_overrides
    from difforge.traj.model import TrajDLM, model_data_dir
    from difforge.traj.sample import TrajectorySampler

    model = TrajDLM.from_pretrained(args.model)
    data_dir = model_data_dir(model.meta, args.data)
    sampling = apply_overrides(model.sampling, args.overrides)
    if args.batch_size:
        sampling = apply_overrides(sampling, [f"batch_size={args.batch_size}"])
    return TrajectorySampler(model, sampling, resolve_device(args.device)), data_dir


def _generate(args: argparse.Namespace) -> None:
    from difforge.traj.data.requests import read_trip_ends, sample_od_requests
    from difforge.traj.export import draw_map, write_generated_csv, write_geojson, write_gpx

    if args.n < 1:
        raise UserError(f"--n must be >= 1, got {args.n}")
    outputs = [p for p in (args.out, args.geojson, args.gpx, args.png) if p is not None]
    if len(set(map(Path.resolve, outputs))) != len(outputs):
        raise UserError("--out, --geojson, --gpx and --png must be different files")
    _set_threads(args.threads)
    sampler, data_dir = _load_sampler(args)
    train_ends = read_trip_ends(data_dir / "train.csv", sampler.graph.num_segments)
    requests = sample_od_requests(train_ends, args.n, args.seed)
    trips = sampler.generate(requests, seed=args.seed)
    write_generated_csv(args.out, trips)
    if args.geojson:
        write_geojson(args.geojson, sampler.graph, trips)
    if args.gpx:
        write_gpx(args.gpx, sampler.graph, trips)
    if args.png:
        draw_map(args.png, sampler.graph, trips)
    print(
        f"generated {len(trips)} trips in {trips.seconds:.1f} s ({trips.trajectories_per_second:.1f} "
        f"trips/s on {trips.device}, batch {trips.batch_size}); OD pairs from {data_dir / 'train.csv'}"
    )
    print(
        f"fully legal: {trips.fully_legal.mean():.2%}, "
        f"destination reached: {trips.reached.mean():.2%}"
    )
    print("wrote " + ", ".join(str(p) for p in outputs))


def _add_generate(subparsers) -> None:
    p = subparsers.add_parser(
        "generate",
        help="generate trips with a trained model -> HOSER CSV (+ GeoJSON, GPX, PNG map)",
        description="Draw N OD pairs and departure times from the training set of the model's "
        "data (HOSER's gene.py) and generate one trip for each.",
    )
    p.add_argument("--model", required=True, help="model folder, or 'default' (the shipped one)")
    p.add_argument("--n", type=int, required=True, help="number of trips")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="output CSV (rid_list, time_list, ...)")
    p.add_argument("--geojson", type=Path, help="also write a GeoJSON FeatureCollection")
    p.add_argument("--gpx", type=Path, help="also write GPX tracks with timestamps")
    p.add_argument("--png", type=Path, help="also draw the trips over the road network")
    p.add_argument(
        "--data",
        type=Path,
        help="dataset folder for the OD pairs (default: the model's training data)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int, default=0, help="trips per batch (default: model's)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="sampling overrides, e.g. guidance_scale=0 steps_per_block=4 decoding=autoregressive",
    )
    p.set_defaults(func=_generate)


def _evaluate(args: argparse.Namespace) -> None:
    from difforge.traj.evaluate import evaluate, format_markdown_table

    result = evaluate(
        args.data, args.generated, args.out, city=args.city, progress=sys.stderr.isatty()
    )
    print(format_markdown_table({Path(args.generated).name: result}))
    print(
        f"{result['num_generated']} generated vs {result['num_real']} test trips, "
        f"{result['num_od_pairs']} OD-matched pairs; wrote {args.out}"
    )


def _add_evaluate(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="score generated trips against DIR/test.csv with the HOSER protocol",
        description="JSD of distance, radius of gyration and durations; Hausdorff, DTW and EDR on "
        "OD-matched pairs (200 m grid); legality and destination-reached shares.",
    )
    p.add_argument("--data", type=Path, required=True, help="dataset folder with test.csv")
    p.add_argument("--generated", type=Path, required=True, help="generated HOSER CSV")
    p.add_argument("--out", type=Path, required=True, help="output JSON")
    p.add_argument("--city", help="use HOSER's grid box: Beijing, Porto or San Francisco")
    p.set_defaults(func=_evaluate)


def _bench(args: argparse.Namespace) -> None:
    from difforge.core.cli import resolve_device
    from difforge.traj.bench import BenchSettings, run_bench, write_bench
    from difforge.traj.model import TrajDLM, model_data_dir, resolve_model_dir

    _set_threads(args.threads)
    model = TrajDLM.from_pretrained(args.model)
    data_dir = model_data_dir(model.meta, args.data)
    extra = {}
    for item in args.extra_model:
        label, sep, path = item.partition("=")
        if not sep or not label:
            raise UserError(f"--extra-model expects LABEL=DIR, got {item!r}")
        extra[label] = resolve_model_dir(path)
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
    command = "difforge-traj " + " ".join(shlex.quote(a) for a in args.argv)
    results = run_bench(
        data_dir,
        model,
        settings,
        ar_model_dir=resolve_model_dir(args.ar_model) if args.ar_model else None,
        hoser_model_dir=args.hoser_model,
        hoser_save_dir=None
        if args.hoser_model
        else args.hoser_save or args.out_dir / "hoser_model",
        on_progress=lambda partial: write_bench(partial, args.out_dir, command),
    )
    write_bench(results, args.out_dir, command)
    print((args.out_dir / "bench.md").read_text(encoding="utf-8"))


def _add_bench(subparsers) -> None:
    p = subparsers.add_parser(
        "bench",
        help="compare every method on the same OD requests (metrics + throughput)",
        description="Shortest path, Markov chain, HOSER-style search, autoregressive decoding "
        "and TrajDLM on the same requests, scored by the HOSER protocol; writes bench.json and "
        "bench.md.",
    )
    p.add_argument("--model", default="default", help="TrajDLM model folder or 'default'")
    p.add_argument("--ar-model", help="model trained with model.block_size=1 (AR baseline)")
    p.add_argument("--hoser-model", type=Path, help="saved HOSER-style model (else trained here)")
    p.add_argument(
        "--hoser-save", type=Path, help="where to save the trained one (default: OUT/hoser_model)"
    )
    p.add_argument("--data", type=Path, help="dataset folder (default: the model's data)")
    p.add_argument("--out-dir", type=Path, required=True, help="folder for bench.json, bench.md")
    p.add_argument("--n", type=int, default=5000, help="trips per method and seed (HOSER: 5000)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument(
        "--methods",
        nargs="+",
        help="subset of: real_trips (reference: the training trips themselves) shortest_path "
        "modal_route markov hoser_beam hoser_astar ar_decoding trajdlm (default: all but "
        "hoser_astar, BenchSettings.methods)",
    )
    p.add_argument("--ablations", action="store_true", help="also TrajDLM sampling ablations")
    p.add_argument(
        "--extra-model",
        action="append",
        default=[],
        metavar="LABEL=DIR",
        help="another trained model to score as its own row (repeatable)",
    )
    p.add_argument("--throughput-batches", type=int, nargs="*", default=[1, 16, 256, 4096])
    p.add_argument("--throughput-requests", type=int, default=256)
    p.add_argument("--hoser-epochs", type=int, default=25)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.set_defaults(func=_bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="difforge-traj", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_prepare(subparsers)
    _add_match(subparsers)
    _add_train(subparsers)
    _add_generate(subparsers)
    _add_evaluate(subparsers)
    _add_bench(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv  # recorded in benchmark reports
    try:
        args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
