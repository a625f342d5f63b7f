"""``difforge-av``: dataset, train, generate and evaluate synchronised audio-video clips."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from difforge.av import TRAIN_PRESETS
from difforge.core.cli import (
    Command,
    add_config_arguments,
    add_device_argument,
    add_overwrite_argument,
    add_seed_argument,
    command_line,
    echo,
    int_arg,
    resolve_device,
)
from difforge.core.errors import UserError
from difforge.core.outputs import OutputPlan

MAX_CLIPS = 100_000


def _add_dataset(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--n", type=int_arg(1, MAX_CLIPS), default=64, help="procedural BounceAV clips"
    )
    source.add_argument(
        "--from-videos",
        type=Path,
        metavar="DIR",
        help="cut 1.6 s windows out of every video (with sound) in DIR instead",
    )
    p.add_argument(
        "--stride", type=int_arg(1, 1000), default=16, help="frames between windows (--from-videos)"
    )
    add_seed_argument(p)
    add_overwrite_argument(p)


def _dataset(args: argparse.Namespace) -> None:
    from difforge.av.data.dataset import procedural_dataset, videos_dataset, write_dataset

    plan = OutputPlan(overwrite=args.overwrite).reads("--from-videos", args.from_videos)
    plan.writes_folder("--out", args.out).check()
    if args.from_videos is not None:
        arrays, records = videos_dataset(args.from_videos, args.stride)
    else:
        arrays, records = procedural_dataset(args.n, args.seed)
    write_dataset(args.out, arrays, records, overwrite=args.overwrite)
    echo(f"wrote {len(records)} clips to {args.out}")


def _add_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="model folder to write")
    p.add_argument("--data", type=Path, help="a `difforge-av dataset` folder (default: procedural)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    add_config_arguments(p, TRAIN_PRESETS)


def _train(args: argparse.Namespace) -> None:
    from difforge.av.train import AVConfig, train
    from difforge.core.cli import config_from_args

    config = config_from_args(AVConfig, args)
    OutputPlan(overwrite=True).reads("--data", args.data).writes_folder("--out", args.out).check()
    if args.out.exists() and any(args.out.iterdir()) and not args.resume:
        raise UserError(f"--out {args.out} is not empty; pass --resume to continue its run")
    info = train(config, args.out, data=args.data, resume=args.resume)
    echo(f"trained {info['training']['steps']} steps -> {args.out}")


def _add_generate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prompt", required=True, help="e.g. 'two small metal balls bouncing'")
    p.add_argument("--out", type=Path, required=True, help="MP4 to write (H.264 + AAC)")
    p.add_argument("--wav", type=Path, help="also write the sound track as WAV")
    p.add_argument("--png", type=Path, help="also write a strip of every other frame as PNG")
    p.add_argument("--model", default="default", help="model folder (default: the shipped one)")
    p.add_argument("--steps", type=int_arg(1, 1000), help="DDIM steps (default: the model's)")
    add_seed_argument(p)
    add_device_argument(p)


def _generate(args: argparse.Namespace) -> None:
    import numpy as np

    from difforge.av.data.captions import tokenize
    from difforge.av.data.video_io import write_mp4
    from difforge.av.sample import generate, load_model
    from difforge.core.io import atomic_paths

    tokenize(args.prompt)  # a bad prompt fails before the model loads
    plan = OutputPlan().writes_file("--out", args.out, (".mp4",))
    plan.writes_file("--wav", args.wav, (".wav",)).writes_file("--png", args.png, (".png",))
    plan.check()
    model, sampling, _ = load_model(args.model)
    overrides = {"steps": args.steps} if args.steps else {}
    clip = generate(
        model,
        [args.prompt],
        seed=args.seed,
        sampling=sampling,
        device=resolve_device(args.device),
        **overrides,
    )[0]
    targets = [p for p in (args.out, args.wav, args.png) if p is not None]
    with atomic_paths(targets) as tmps:
        paths = dict(zip(targets, tmps))
        write_mp4(paths[args.out], clip.video, clip.audio)
        if args.wav is not None:
            import soundfile

            soundfile.write(paths[args.wav], clip.audio, clip.sample_rate, format="WAV")
        if args.png is not None:
            import cv2

            strip = np.concatenate(list(clip.video[::2]), axis=1)
            if not cv2.imwrite(str(paths[args.png]) + ".png", strip[..., ::-1]):
                raise UserError(f"--png {args.png}: cannot write")
            Path(str(paths[args.png]) + ".png").replace(paths[args.png])
    echo(f"wrote {', '.join(map(str, targets))}")


def _add_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--generated", type=Path, nargs="+", required=True, help="video files or folders"
    )
    p.add_argument("--out", type=Path, required=True, help="JSON file of the scores")


def _evaluate(args: argparse.Namespace) -> None:
    import numpy as np

    from difforge.av.data.video_io import read_video, video_files
    from difforge.av.evaluate import av_align, event_sync
    from difforge.core.io import atomic_open

    plan = OutputPlan()
    for path in args.generated:
        plan.reads("--generated", path)
    plan.writes_file("--out", args.out, (".json",)).check()
    files = [f for p in args.generated for f in (video_files(p) if p.is_dir() else [p])]
    rows = []
    for path in files:
        if not path.is_file():
            raise UserError(f"--generated {path}: no such file")
        frames, audio = read_video(path)
        sync = event_sync(frames, audio)
        rows.append(
            {
                "file": str(path),
                "av_align": av_align(frames, audio),
                "event_f1": sync.f1,
                "event_median_error_s": None
                if np.isnan(sync.median_error_s)
                else sync.median_error_s,
            }
        )
    errors = [r["event_median_error_s"] for r in rows if r["event_median_error_s"] is not None]
    summary = {
        "clips": len(rows),
        "av_align": float(np.mean([r["av_align"] for r in rows])),
        "event_f1": float(np.mean([r["event_f1"] for r in rows])),
        "event_median_error_s": float(np.median(errors)) if errors else None,
    }
    with atomic_open(args.out) as fh:
        json.dump({"summary": summary, "clips": rows}, fh, indent=1)
    echo(json.dumps(summary))


main = command_line(
    "difforge-av",
    "Short clips whose sounds line up with what is seen, from a text prompt.",
    [
        Command("dataset", "write a dataset folder of training clips", _add_dataset, _dataset),
        Command("train", "train the joint audio-video DiT", _add_train, _train),
        Command("generate", "a prompt -> an MP4 clip with sound", _add_generate, _generate),
        Command("evaluate", "AV-Align and event sync of video files", _add_evaluate, _evaluate),
    ],
)

if __name__ == "__main__":
    raise SystemExit(main())
