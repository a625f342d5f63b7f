"""What ``difforge-traj bench`` runs (:class:`BenchSettings`), apart from the benchmark itself so
that a recipe or a command line can hold the settings without importing the methods and the
evaluation (see :mod:`difforge.traj.bench`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from difforge.core.errors import UserError

BASELINES = ("shortest_path", "modal_route", "markov", "hoser")
REFERENCE = "real_trips"


@dataclass
class BenchSettings:
    """What to run: the methods and their settings (:mod:`difforge.traj.bench` describes them)."""

    n: int = 5000
    seeds: tuple[int, ...] = (0,)
    batch_size: int = 256
    methods: tuple[str, ...] = (
        REFERENCE,
        "shortest_path",
        "modal_route",
        "markov",
        "hoser",
        "ar_decoding",
        "trajdlm",
    )
    ablations: bool = False
    throughput_batches: tuple[int, ...] = (1, 16, 256, 4096)
    throughput_requests: int = 256  # trips timed per batch size (at least one full batch)
    hoser_epochs: int = 25
    device: str = "cpu"
    extra_models: dict[str, Path] = field(default_factory=dict)

    def __post_init__(self) -> None:
        known = {REFERENCE, *BASELINES, "ar_decoding", "trajdlm"}
        unknown = [m for m in self.methods if m not in known]
        if unknown:
            raise UserError(f"unknown method(s) {', '.join(unknown)}; choose from {sorted(known)}")
        if self.n < 1 or self.batch_size < 1:
            raise UserError("--n and --batch-size must be >= 1")
        if any(b < 1 for b in self.throughput_batches):
            raise UserError("throughput batch sizes must be >= 1")
