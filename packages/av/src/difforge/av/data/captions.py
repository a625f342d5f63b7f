"""The closed caption vocabulary of BounceAV, and prompts turned into token ids."""

from __future__ import annotations

import difflib

import numpy as np

from difforge.av.data.bounce import COUNT_WORDS, MATERIALS, NOISES, SIZES
from difforge.core.errors import UserError

PAD, NULL = 0, 1  # padding; the "no caption" token of classifier-free guidance
MAX_WORDS = 10
WORDS: tuple[str, ...] = (
    "<pad>",
    "<null>",
    *COUNT_WORDS,
    *SIZES,
    *MATERIALS,
    "ball",
    "balls",
    "bouncing",
    "in",
    "the",
    *[n for n in NOISES if n != "none"],
)
WORD_IDS = {w: i for i, w in enumerate(WORDS)}


def tokenize(prompt: str, max_words: int = MAX_WORDS) -> np.ndarray:
    """Token ids ``(max_words,)`` of ``prompt``; unknown words are a UserError naming the closest
    known ones."""
    words = prompt.lower().replace(",", " ").split()
    if not words:
        raise UserError("the prompt is empty; try e.g. 'two small metal balls bouncing'")
    unknown = [w for w in words if w not in WORD_IDS or WORD_IDS[w] <= NULL]
    if unknown:
        known = [w for w in WORDS if not w.startswith("<")]
        hints = {w: difflib.get_close_matches(w, known, n=3, cutoff=0.5) for w in unknown}
        detail = "; ".join(f"{w!r} (closest: {', '.join(h) or 'none'})" for w, h in hints.items())
        raise UserError(f"unknown prompt words: {detail}")
    if len(words) > max_words:
        raise UserError(f"the prompt has {len(words)} words; at most {max_words}")
    ids = np.full(max_words, PAD, dtype=np.int64)
    ids[: len(words)] = [WORD_IDS[w] for w in words]
    return ids


def null_tokens(max_words: int = MAX_WORDS) -> np.ndarray:
    """The unconditional caption: every position the null token."""
    return np.full(max_words, NULL, dtype=np.int64)
