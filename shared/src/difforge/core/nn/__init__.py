"""Network building blocks shared by every domain (the DiT backbone) and small model helpers."""

from torch import nn


def num_parameters(model: nn.Module | None) -> int:
    """How many numbers ``model`` learns (0 for None); tied tensors count once."""
    if model is None:
        return 0
    return sum(p.numel() for p in model.parameters())
