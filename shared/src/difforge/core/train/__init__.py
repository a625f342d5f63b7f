"""Training: the accelerate loop, exact-resume checkpoints and the resumable sampler."""

from difforge.core.train.checkpoint import (
    Checkpoint,
    atomic_dir,
    capture_rng_state,
    check_model_config,
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    restore_rng_state,
    save_checkpoint,
)
from difforge.core.train.run import (
    DataFactory,
    LossFn,
    TrainConfig,
    TrainResult,
    process_state,
    warmup_cosine,
)
from difforge.core.train.sampler import ResumableBatchSampler
from difforge.core.train.trainer import Trainer

__all__ = [
    "Checkpoint",
    "DataFactory",
    "LossFn",
    "ResumableBatchSampler",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "atomic_dir",
    "capture_rng_state",
    "check_model_config",
    "checkpoint_path",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "process_state",
    "prune_checkpoints",
    "restore_rng_state",
    "save_checkpoint",
    "warmup_cosine",
]
