"""``difforge-traj``: one subcommand per task (prepare, match, ...); each has its own parser.

To add a command, write ``_add_<name>(subparsers)`` that registers its arguments and sets
``func`` to a function taking the parsed namespace, and call it in :func:`build_parser`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from difforge.core.errors import UserError


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="difforge-traj", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_prepare(subparsers)
    _add_match(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
