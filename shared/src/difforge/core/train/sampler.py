"""A seeded, endless, resumable batch sampler: the data order is a function of (seed, position).

Why not torch's RandomSampler + accelerate's sharding: their position is hidden inside iterator
state that DataLoader workers prefetch ahead of training, so a checkpoint cannot say exactly which
sample comes next. Here the whole run reads one global stream of indices (epoch ``e`` is a
permutation seeded by ``(seed, e)``), every process takes its slice of each global batch, and the
position is just the number of samples consumed so far.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler


class ResumableBatchSampler(Sampler[list[int]]):
    """Yields this process's batches of dataset indices forever, starting at ``start_sample``.

    One global batch is ``batch_size * world_size`` consecutive indices of the stream; process
    ``rank`` takes the ``rank``-th slice. Batches run across epoch boundaries, so no sample is
    dropped and every epoch sees each index exactly once.
    """

    def __init__(
        self,
        dataset_size: int,
        batch_size: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        start_sample: int = 0,
    ) -> None:
        if dataset_size <= 0:
            raise ValueError("the dataset is empty")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world size {world_size}")
        self.dataset_size, self.batch_size = dataset_size, batch_size
        self.seed, self.shuffle = seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.start_sample = start_sample

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The order of dataset indices in ``epoch``."""
        if not self.shuffle:
            return np.arange(self.dataset_size)
        return np.random.default_rng([self.seed, epoch]).permutation(self.dataset_size)

    def indices(self) -> Iterator[int]:
        """The global stream of indices from ``start_sample`` on."""
        epoch, offset = divmod(self.start_sample, self.dataset_size)
        while True:
            yield from self.epoch_order(epoch)[offset:].tolist()
            epoch, offset = epoch + 1, 0

    def __iter__(self) -> Iterator[list[int]]:
        stream = self.indices()
        lo = self.rank * self.batch_size
        while True:
            global_batch = [next(stream) for _ in range(self.batch_size * self.world_size)]
            yield global_batch[lo : lo + self.batch_size]
