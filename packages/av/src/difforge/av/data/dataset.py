"""Dataset folders: ``dataset.npz`` (video uint8, mel float16, caption ids) + ``clips.json``.

Built from procedural BounceAV seeds or from windows cut out of a folder of the user's videos
(any length, frame rate and audio rate; their captions are the null caption, so the model learns
them unconditionally).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from difforge.av.data.audio import log_mel
from difforge.av.data.bounce import Clip, make_clip
from difforge.av.data.captions import null_tokens, tokenize
from difforge.av.data.video_io import clip_windows, read_video, video_files
from difforge.core.errors import UserError
from difforge.core.io import atomic_dir, write_json


def clip_record(clip: Clip) -> dict[str, Any]:
    """The JSON ground truth of a procedural clip."""
    return {
        "caption": clip.caption,
        "labels": clip.labels,
        "impact_times": [round(float(t), 5) for t in clip.impact_times],
        "impact_speeds": [round(i.speed, 3) for i in clip.impacts],
        "tracks": np.round(clip.tracks, 3).tolist() if clip.tracks is not None else None,
        "radii": clip.radii.tolist() if clip.radii is not None else None,
    }


def _arrays(clips: list[Clip], text_ids: list[np.ndarray]) -> dict[str, np.ndarray]:
    return {
        "video": np.stack([c.video for c in clips]),
        "mel": np.stack([log_mel(c.audio) for c in clips]).astype(np.float16),
        "text_ids": np.stack(text_ids),
    }


def procedural_dataset(count: int, seed: int) -> tuple[dict[str, np.ndarray], list[dict]]:
    """``count`` BounceAV clips from seeds ``seed, seed + 1, ...``."""
    clips = [make_clip(seed + i) for i in range(count)]
    records = [{"seed": seed + i, **clip_record(c)} for i, c in enumerate(clips)]
    return _arrays(clips, [tokenize(c.caption) for c in clips]), records


def videos_dataset(
    folder: str | os.PathLike[str], stride_frames: int
) -> tuple[dict[str, np.ndarray], list[dict]]:
    """Training windows cut from every video file in ``folder``."""
    clips, records = [], []
    for path in video_files(folder):
        frames, audio = read_video(path)
        for start, clip in clip_windows(frames, audio, stride_frames=stride_frames):
            clips.append(clip)
            records.append({"source": path.name, "start_frame": start})
    if not clips:
        raise UserError(f"{folder}: every video is shorter than one 1.6 s window")
    return _arrays(clips, [null_tokens() for _ in clips]), records


def write_dataset(
    folder: str | os.PathLike[str],
    arrays: dict[str, np.ndarray],
    records: list[dict],
    *,
    overwrite: bool = False,
) -> Path:
    """Write the folder whole or not at all."""
    with atomic_dir(folder, overwrite=overwrite) as tmp:
        np.savez(tmp / "dataset.npz", **arrays)
        write_json(tmp / "clips.json", records)
    return Path(folder)
