"""Real clips in and out through PyAV: any container FFmpeg reads (MP4, MKV, WebM, ...) with an
audio track, resampled to the model's frame rate, frame size and audio rate; MP4 out with H.264
video and AAC audio that ordinary players open.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

import av
from difforge.av.data.bounce import FPS, NUM_FRAMES, NUM_SAMPLES, SAMPLE_RATE, SIZE, Clip
from difforge.core.errors import UserError
from difforge.core.io import atomic_path

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v")


def _square(frame: np.ndarray, size: int) -> np.ndarray:
    """Centre crop to a square, then resize (area filter) to ``size``."""
    height, width = frame.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    crop = frame[top : top + side, left : left + side]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def read_video(
    path: str | os.PathLike[str],
    *,
    fps: float = FPS,
    size: int = SIZE,
    sample_rate: int = SAMPLE_RATE,
) -> tuple[np.ndarray, np.ndarray]:
    """The whole file as ``(frames (T, size, size, 3) uint8 RGB, mono float32 audio)``.

    Frames are picked at ``k / fps`` (the last frame shown at that time); audio is mixed to mono
    and resampled by FFmpeg. A file that cannot be decoded or has no audio track is a UserError.
    """
    path = Path(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise UserError(f"{path}: has no audio track")
            if not container.streams.video:
                raise UserError(f"{path}: has no video track")
            frames = _decode_frames(container, fps, size)
        with av.open(str(path)) as container:
            audio = _decode_audio(container, sample_rate)
    except av.error.FFmpegError as exc:
        raise UserError(f"{path}: cannot decode ({exc.strerror or exc})") from None
    if not len(frames):
        raise UserError(f"{path}: no video frames decoded")
    return frames, audio


def _decode_frames(container: av.container.InputContainer, fps: float, size: int) -> np.ndarray:
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    frames: list[np.ndarray] = []
    last: np.ndarray | None = None
    start: float | None = None
    for frame in container.decode(stream):
        if frame.time is None:
            continue
        start = frame.time if start is None else start
        time = frame.time - start
        while len(frames) / fps < time - 1e-6 and last is not None:
            frames.append(last)  # the previous frame is on screen at this sample time
        last = _square(frame.to_ndarray(format="rgb24"), size)
    if last is not None:
        frames.append(last)
    return np.stack(frames) if frames else np.zeros((0, size, size, 3), np.uint8)


def _decode_audio(container: av.container.InputContainer, sample_rate: int) -> np.ndarray:
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    chunks: list[np.ndarray] = []
    for frame in container.decode(container.streams.audio[0]):
        for out in resampler.resample(frame):
            chunks.append(out.to_ndarray().reshape(-1))
    for out in resampler.resample(None):
        chunks.append(out.to_ndarray().reshape(-1))
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def clip_windows(
    frames: np.ndarray, audio: np.ndarray, *, stride_frames: int = NUM_FRAMES
) -> Iterator[tuple[int, Clip]]:
    """Training windows of ``NUM_FRAMES`` frames and ``NUM_SAMPLES`` samples, every
    ``stride_frames`` frames, as ``(start frame, Clip)``; the tail shorter than a window is
    dropped."""
    samples_per_frame = SAMPLE_RATE // FPS
    for start in range(0, len(frames) - NUM_FRAMES + 1, stride_frames):
        begin = start * samples_per_frame
        window = audio[begin : begin + NUM_SAMPLES]
        if len(window) < NUM_SAMPLES:
            break
        yield start, Clip(video=frames[start : start + NUM_FRAMES], audio=window, caption="")


def video_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The video files directly in ``folder`` (by suffix), sorted; none is a UserError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not files:
        raise UserError(f"{folder}: no video files ({', '.join(VIDEO_SUFFIXES)})")
    return files


def write_mp4(
    path: str | os.PathLike[str],
    frames: np.ndarray,
    audio: np.ndarray,
    *,
    fps: float = FPS,
    sample_rate: int = SAMPLE_RATE,
) -> Path:
    """An MP4 (H.264 yuv420p + AAC mono) of ``frames`` (T, H, W, 3) uint8 RGB and ``audio``,
    written atomically."""
    path = Path(path)
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        video = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        video.width, video.height = frames.shape[2], frames.shape[1]
        video.pix_fmt = "yuv420p"
        video.options = {"crf": "18"}
        sound = container.add_stream("aac", rate=sample_rate, layout="mono")
        for image in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        samples = np.clip(audio, -1, 1).astype(np.float32)[None]
        chunk = 1024
        for offset in range(0, samples.shape[1], chunk):
            block = np.ascontiguousarray(samples[:, offset : offset + chunk])
            frame = av.AudioFrame.from_ndarray(block, format="flt", layout="mono")
            frame.sample_rate = sample_rate
            frame.pts = offset
            container.mux(sound.encode(frame))
        container.mux(sound.encode(None))
    return path
