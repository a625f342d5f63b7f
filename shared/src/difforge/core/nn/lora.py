"""LoRA adapters (Hu et al. 2021) for the ``nn.Linear`` layers of any model.

``add_lora(model, rank, targets)`` wraps every linear layer whose qualified name matches one of
``targets`` in a :class:`LoRALinear`: the base weight is frozen and a low-rank update
``B @ A * alpha / rank`` (``B`` starts at zero, so the wrapped model computes exactly what it did)
learns on top. ``merge_lora`` folds the updates back into plain ``nn.Linear`` layers for
inference and export; ``trainable_parameters`` counts what an optimiser would update.

Written here rather than taken from ``peft``: peft requires ``transformers`` (and through it
tokenizers and the hub client), a large install for these sixty lines.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import torch
from torch import Tensor, nn


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable rank-``rank`` update."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float | None = None) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {rank}")
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.rank = rank
        self.scaling = (alpha if alpha is not None else rank) / rank
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def forward(self, x: Tensor) -> Tensor:
        update = (x @ self.lora_A.t().to(x.dtype)) @ self.lora_B.t().to(x.dtype)
        return self.base(x) + update * self.scaling

    def merged(self) -> nn.Linear:
        """A plain linear layer computing the same function."""
        layer = nn.Linear(
            self.base.in_features, self.base.out_features, bias=self.base.bias is not None
        )
        with torch.no_grad():
            delta = (self.lora_B @ self.lora_A) * self.scaling
            layer.weight.copy_(self.base.weight + delta.to(self.base.weight.dtype))
            if self.base.bias is not None:
                layer.bias.copy_(self.base.bias)
        return layer.to(self.base.weight.device)


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def add_lora(
    model: nn.Module, rank: int, targets: Sequence[str], alpha: float | None = None
) -> list[str]:
    """Wrap the linear layers whose qualified names match a regex in ``targets`` (``re.search``).

    Returns the wrapped names; raises ValueError when nothing matches (a typo would otherwise
    train nothing).
    """
    patterns = [re.compile(t) for t in targets]
    names = [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and any(p.search(name) for p in patterns)
    ]
    if not names:
        raise ValueError(f"no nn.Linear layer matches {list(targets)}")
    for name in names:
        _replace(model, name, LoRALinear(model.get_submodule(name), rank, alpha))
    return names


def merge_lora(model: nn.Module) -> int:
    """Replace every :class:`LoRALinear` by its merged ``nn.Linear``; returns how many."""
    names = [name for name, m in model.named_modules() if isinstance(m, LoRALinear)]
    for name in names:
        _replace(model, name, model.get_submodule(name).merged())
    return len(names)


def trainable_parameters(model: nn.Module) -> int:
    """How many numbers of ``model`` have ``requires_grad`` (tied tensors count once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
