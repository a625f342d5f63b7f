"""BounceAV: procedural clips of objects bouncing in a box, with the impact sounds they make.

Every clip comes from one seed: 16 frames at 10 fps of 64 x 64 RGB drawn with OpenCV and 1.6 s of
16 kHz audio. One to three balls of one size and one material fall under gravity and bounce off
the walls, the floor and each other; every impact faster than ``MIN_IMPACT_SPEED`` emits a sound of
exponentially decaying modes whose pitch follows the material and the size and whose gain follows
the impact speed. A clip may carry a background-noise class (rain: bright steady hiss; wind: dark
slowly swelling noise). The caption comes from a closed vocabulary; the ground truth (impact times,
tracks, material) is kept for the metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

FPS = 10
NUM_FRAMES = 16
SIZE = 64
SAMPLE_RATE = 16_000
NUM_SAMPLES = NUM_FRAMES * SAMPLE_RATE // FPS  # 25,600: 1.6 s
DURATION = NUM_FRAMES / FPS

GRAVITY = 260.0  # pixels / s^2
PHYSICS_DT = 1.0 / 2000.0
MIN_IMPACT_SPEED = 25.0  # pixels / s: slower contacts are silent (a ball coming to rest)
MAX_IMPACT_SPEED = 220.0

COUNT_WORDS = ("one", "two", "three")
SIZES = {"small": (3.5, 4.5), "large": (6.5, 8.0)}  # radius range in pixels
# colour (BGR for OpenCV), base mode frequency (Hz), mode ratios, decay time (s), restitution
MATERIALS: dict[str, dict] = {
    "rubber": {
        "colour": (40, 40, 210),
        "f0": 180.0,
        "ratios": (1.0, 2.3, 3.9),
        "decay": 0.035,
        "restitution": 0.9,
    },
    "wood": {
        "colour": (40, 110, 170),
        "f0": 420.0,
        "ratios": (1.0, 2.7, 4.6),
        "decay": 0.05,
        "restitution": 0.75,
    },
    "metal": {
        "colour": (190, 190, 190),
        "f0": 900.0,
        "ratios": (1.0, 2.76, 5.40, 8.93),
        "decay": 0.25,
        "restitution": 0.8,
    },
    "glass": {
        "colour": (220, 200, 60),
        "f0": 1700.0,
        "ratios": (1.0, 2.32, 4.25),
        "decay": 0.12,
        "restitution": 0.85,
    },
}
NOISES = ("none", "rain", "wind")
SMALL_PITCH_FACTOR = 1.7  # small balls ring higher


@dataclass
class Impact:
    time: float  # seconds from the clip start
    speed: float  # pixels / s along the contact normal
    objects: tuple[int, ...]  # ball indices (one for a wall or the floor, two for a ball pair)


@dataclass
class Clip:
    """One audio-visual clip: ``video`` uint8 ``(T, H, W, 3)`` RGB, ``audio`` float32 mono."""

    video: np.ndarray
    audio: np.ndarray
    caption: str
    fps: float = FPS
    sample_rate: int = SAMPLE_RATE
    impacts: list[Impact] = field(default_factory=list)
    tracks: np.ndarray | None = None  # (T, n, 2) centres in pixels (x, y) at the frame times
    radii: np.ndarray | None = None
    labels: dict[str, str] = field(default_factory=dict)  # count, size, material, noise

    @property
    def impact_times(self) -> np.ndarray:
        return np.array([i.time for i in self.impacts], dtype=np.float64)


def caption_for(count: int, size: str, material: str, noise: str) -> str:
    noun = "ball" if count == 1 else "balls"
    text = f"{COUNT_WORDS[count - 1]} {size} {material} {noun} bouncing"
    return text + {"none": "", "rain": " in the rain", "wind": " in the wind"}[noise]


def _simulate(
    rng: np.random.Generator, count: int, radius: float, restitution: float
) -> tuple[np.ndarray, list[Impact]]:
    """Positions at the frame times ``(T, n, 2)`` and the impacts, by explicit Euler steps."""
    pos = np.zeros((count, 2))
    for i in range(count):  # non-overlapping starts in the upper half
        for _ in range(100):
            pos[i] = rng.uniform([radius + 1, radius + 1], [SIZE - radius - 1, SIZE * 0.5])
            if all(np.linalg.norm(pos[i] - pos[j]) > 2 * radius + 1 for j in range(i)):
                break
    vel = np.column_stack([rng.uniform(-60, 60, count), rng.uniform(-40, 30, count)])
    frame_times = np.arange(NUM_FRAMES) / FPS
    tracks = np.zeros((NUM_FRAMES, count, 2))
    impacts: list[Impact] = []
    lo, hi = radius, SIZE - radius
    steps = round(DURATION / PHYSICS_DT)
    frame = 0
    for step in range(steps):
        time = step * PHYSICS_DT
        while frame < NUM_FRAMES and frame_times[frame] <= time + 1e-9:
            tracks[frame] = pos
            frame += 1
        vel[:, 1] += GRAVITY * PHYSICS_DT
        pos += vel * PHYSICS_DT
        for i in range(count):
            for axis in (0, 1):
                if (pos[i, axis] < lo and vel[i, axis] < 0) or (
                    pos[i, axis] > hi and vel[i, axis] > 0
                ):
                    speed = abs(vel[i, axis])
                    pos[i, axis] = np.clip(pos[i, axis], lo, hi)
                    vel[i, axis] = -vel[i, axis] * restitution
                    if speed >= MIN_IMPACT_SPEED:
                        impacts.append(Impact(time, speed, (i,)))
                    elif axis == 1 and pos[i, 1] >= hi:  # resting on the floor
                        vel[i, 1] = 0.0
            vel[i, 0] *= 1.0 - 0.3 * PHYSICS_DT  # a little air drag
        for i in range(count):
            for j in range(i + 1, count):
                delta = pos[j] - pos[i]
                dist = float(np.linalg.norm(delta))
                if dist >= 2 * radius or dist == 0.0:
                    continue
                normal = delta / dist
                approach = float(np.dot(vel[i] - vel[j], normal))
                if approach <= 0:
                    continue
                impulse = 0.5 * (1 + restitution) * approach * normal
                vel[i] -= impulse
                vel[j] += impulse
                overlap = 2 * radius - dist
                pos[i] -= 0.5 * overlap * normal
                pos[j] += 0.5 * overlap * normal
                if approach >= MIN_IMPACT_SPEED:
                    impacts.append(Impact(time, approach, (i, j)))
    return tracks, impacts


def impact_sound(
    impacts: list[Impact], material: str, size: str, rng: np.random.Generator
) -> np.ndarray:
    """The clip's impact sounds: per impact a sum of decaying modes, gain from the speed."""
    spec = MATERIALS[material]
    f0 = spec["f0"] * (SMALL_PITCH_FACTOR if size == "small" else 1.0)
    audio = np.zeros(NUM_SAMPLES)
    for impact in impacts:
        start = round(impact.time * SAMPLE_RATE)
        length = min(NUM_SAMPLES - start, int(6 * spec["decay"] * SAMPLE_RATE))
        if length <= 0:
            continue
        t = np.arange(length) / SAMPLE_RATE
        gain = 0.6 * min(1.0, impact.speed / MAX_IMPACT_SPEED) ** 0.8
        detune = rng.uniform(0.97, 1.03)
        for k, ratio in enumerate(spec["ratios"]):
            decay = spec["decay"] / (1 + 0.6 * k)  # higher modes die faster
            phase = rng.uniform(0, 2 * np.pi)
            mode = np.sin(2 * np.pi * f0 * ratio * detune * t + phase) * np.exp(-t / decay)
            audio[start : start + length] += gain * mode / (1 + k)
        audio[start : start + min(length, 16)] *= np.linspace(0, 1, min(length, 16))  # no click
    return audio


def background_noise(noise: str, rng: np.random.Generator) -> np.ndarray:
    """Steady filtered noise (no onsets of its own): rain is bright, wind dark and swelling."""
    if noise == "none":
        return np.zeros(NUM_SAMPLES)
    white = rng.standard_normal(NUM_SAMPLES)
    spectrum = np.fft.rfft(white)
    freqs = np.fft.rfftfreq(NUM_SAMPLES, 1 / SAMPLE_RATE)
    if noise == "rain":
        shaped = spectrum * (freqs > 2000) * 0.02
    else:
        shaped = spectrum / (1 + (freqs / 250.0) ** 2) * 0.06
    signal = np.fft.irfft(shaped, NUM_SAMPLES)
    if noise == "wind":
        t = np.arange(NUM_SAMPLES) / SAMPLE_RATE
        signal *= 0.7 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.3, 0.7) * t + rng.uniform(0, 6))
    return signal


def _background(rng: np.random.Generator) -> np.ndarray:
    top, bottom = rng.uniform(30, 200, 3), rng.uniform(30, 200, 3)
    ramp = np.linspace(0, 1, SIZE)[:, None, None]
    image = (top * (1 - ramp) + bottom * ramp) * np.ones((SIZE, SIZE, 3))
    image[-3:] = rng.uniform(0, 80, 3)  # floor strip
    return image.astype(np.uint8)


def render_frames(tracks: np.ndarray, radius: float, material: str, background: np.ndarray):
    """RGB frames ``(T, H, W, 3)``: antialiased discs with a dark rim, drawn with OpenCV."""
    colour = MATERIALS[material]["colour"]
    rim = tuple(int(c * 0.5) for c in colour)
    scale = 16  # OpenCV's sub-pixel shift: positions in 1/16 pixel
    frames = np.empty((len(tracks), SIZE, SIZE, 3), dtype=np.uint8)
    for f, centres in enumerate(tracks):
        bgr = background[..., ::-1].copy()
        for x, y in centres:
            centre = (round(x * scale), round(y * scale))
            cv2.circle(bgr, centre, int(radius * scale), colour, -1, cv2.LINE_AA, 4)
            cv2.circle(bgr, centre, int(radius * scale), rim, 1, cv2.LINE_AA, 4)
        frames[f] = bgr[..., ::-1]
    return frames


def make_clip(
    seed: int,
    *,
    count: int | None = None,
    size: str | None = None,
    material: str | None = None,
    noise: str | None = None,
) -> Clip:
    """The BounceAV clip of ``seed``; any label given fixes that attribute (prompted generation)."""
    rng = np.random.default_rng(seed)
    count = count or int(rng.integers(1, 4))
    size = size or str(rng.choice(list(SIZES)))
    material = material or str(rng.choice(list(MATERIALS)))
    noise = noise or str(rng.choice(NOISES, p=(0.6, 0.2, 0.2)))
    radius = float(rng.uniform(*SIZES[size]))
    tracks, impacts = _simulate(rng, count, radius, MATERIALS[material]["restitution"])
    audio = impact_sound(impacts, material, size, rng) + background_noise(noise, rng)
    video = render_frames(tracks, radius, material, _background(rng))
    return Clip(
        video=video,
        audio=np.clip(audio, -1, 1).astype(np.float32),
        caption=caption_for(count, size, material, noise),
        impacts=impacts,
        tracks=tracks,
        radii=np.full(count, radius),
        labels={"count": str(count), "size": size, "material": material, "noise": noise},
    )
