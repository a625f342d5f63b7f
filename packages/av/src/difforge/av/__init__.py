"""difforge.av: short clips whose sounds line up with what is seen, from a text prompt.

After AV-DiT and 3MDiT: procedural BounceAV clips and users' real videos (``data``), a joint
audio-video DiT with factorised space/time attention and omni-blocks over video, audio and text
(``model``), training (``train``), DDIM sampling to MP4 (``sample``) and the sync metrics
AV-Align and event-sync F1 (``evaluate``).
"""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"
__all__ = ["TRAIN_PRESETS", "__version__"]

# The named configs (model size, training, sampling), read by difforge.core.cli.load_preset.
TRAIN_PRESETS = Path(__file__).resolve().parent / "configs" / "train"
