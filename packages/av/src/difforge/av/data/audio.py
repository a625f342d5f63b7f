"""Audio as a one-channel image: a log-mel spectrogram in [-1, 1], and back by Griffin-Lim.

64 mel bands x 100 frames (hop 256 at 16 kHz) cover the clip's 1.6 s; the value range maps
-80..0 dB of mel power (reference 1.0) linearly onto -1..1, so silence is -1 and a full-scale
tone near 1.
"""

from __future__ import annotations

import librosa
import numpy as np

from difforge.av.data.bounce import NUM_SAMPLES, SAMPLE_RATE

N_MELS = 64
HOP = 256
N_FFT = 1024
MEL_FRAMES = NUM_SAMPLES // HOP  # 100
DB_FLOOR = -80.0
GRIFFIN_LIM_ITERS = 48


def log_mel(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """``(N_MELS, MEL_FRAMES)`` float32 in [-1, 1] for mono audio of ``NUM_SAMPLES`` samples."""
    mel = librosa.feature.melspectrogram(
        y=np.asarray(audio, dtype=np.float32),
        sr=sample_rate,
        n_fft=N_FFT,
        hop_length=HOP,
        n_mels=N_MELS,
        power=2.0,
    )[:, :MEL_FRAMES]
    db = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
    return (np.clip(db / -DB_FLOOR + 1.0, 0.0, 1.0) * 2.0 - 1.0).astype(np.float32)


def mel_to_audio(image: np.ndarray, sample_rate: int = SAMPLE_RATE, seed: int = 0) -> np.ndarray:
    """Waveform of ``NUM_SAMPLES`` samples from a :func:`log_mel` image by Griffin-Lim."""
    db = (np.clip(image, -1.0, 1.0) + 1.0) / 2.0 * -DB_FLOOR + DB_FLOOR
    power = librosa.db_to_power(db)
    power[db <= DB_FLOOR + 1e-3] = 0.0
    # The centred STFT of NUM_SAMPLES samples has one frame more than the image keeps.
    power = np.concatenate([power, power[:, -1:]], axis=1)
    magnitude = librosa.feature.inverse.mel_to_stft(power, sr=sample_rate, n_fft=N_FFT, power=2.0)
    audio = librosa.griffinlim(
        magnitude,
        n_iter=GRIFFIN_LIM_ITERS,
        hop_length=HOP,
        n_fft=N_FFT,
        length=NUM_SAMPLES,
        random_state=seed,
    )
    return np.clip(audio, -1.0, 1.0).astype(np.float32)
