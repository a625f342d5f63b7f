"""The sparse-product hop search used on GPUs agrees with scipy's breadth-first search."""

from __future__ import annotations

import numpy as np
import torch
from scipy.sparse import csr_matrix

from difforge.traj.constraint import (
    UNREACHABLE,
    HopDistances,
    frontier_hops,
    sparse_successors,
)
from difforge.traj.data.synthetic import synthetic_city


def _sparse(pairs: list[tuple[int, int]], n: int) -> torch.Tensor:
    rows, columns = zip(*pairs, strict=True)
    return sparse_successors(csr_matrix((np.ones(len(pairs)), (rows, columns)), shape=(n, n)))


def test_frontier_hops_by_hand():
    # 0 -> 1 -> 2 -> 0 is a loop, 3 -> 0 enters it, 4 is cut off from everything.
    successors = _sparse([(0, 1), (1, 2), (2, 0), (3, 0)], 5)
    hops = frontier_hops(successors, torch.tensor([0, 2]))
    assert hops.tolist() == [
        [0, 2, 1, 1, UNREACHABLE],  # to 0: from 2 in one step, from 1 in two, from 3 in one
        [2, 1, 0, 3, UNREACHABLE],  # to 2: 1 -> 2, 0 -> 1 -> 2, 3 -> 0 -> 1 -> 2
    ]


def test_frontier_hops_match_scipy_on_a_city():
    city = synthetic_city(5, seed=1)
    table = HopDistances(city)
    destinations = np.array([0, 7, 7, city.num_segments - 1])
    hops = frontier_hops(sparse_successors(table.successors), torch.from_numpy(destinations))
    np.testing.assert_array_equal(hops.numpy(), table.to(destinations))
    assert hops.dtype == torch.int32
