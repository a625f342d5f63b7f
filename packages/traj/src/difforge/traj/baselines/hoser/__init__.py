"""HOSER (Cao et al., AAAI 2025) rebuilt in the harness: zones, model, training and search."""

from difforge.traj.baselines.hoser.model import HoserConfig, HoserModel
from difforge.traj.baselines.hoser.search import hoser_requests, search
from difforge.traj.baselines.hoser.train import next_step_accuracy, train_hoser

__all__ = [
    "HoserConfig",
    "HoserModel",
    "hoser_requests",
    "next_step_accuracy",
    "search",
    "train_hoser",
]
