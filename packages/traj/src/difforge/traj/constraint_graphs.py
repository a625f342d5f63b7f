"""CUDA-graph replay of the topology constraint (:class:`ConstraintGraphs`)."""

from __future__ import annotations

import torch
from torch import Tensor

from difforge.traj.constraint import TopologyConstraint


class ConstraintGraphs:
    """Replays :class:`TopologyConstraint` as CUDA graphs, one per input shape.

    Eager PyTorch launches the constraint's few hundred small kernels one by one, which dominates
    a small batch on a GPU; a captured graph launches them together. Each shape's first capture is
    checked against the eager result; any capture error or difference turns graphs off for good
    (eager from then on), so a failure can cost speed but never correctness.
    """

    def __init__(self) -> None:
        self.enabled = True
        self.entries: dict[tuple, tuple] = {}
        self.failure: str | None = None

    def wrap(self, constraint: TopologyConstraint):
        """A logits constraint that replays a graph of ``constraint`` where it can."""
        if constraint.temperature > 0 or constraint.limits is None:
            return constraint  # sampling noise is drawn eagerly

        def call(logits: Tensor, tokens: Tensor, positions: Tensor) -> Tensor:
            if not self.enabled or logits.device.type != "cuda":
                return constraint(logits, tokens, positions)
            key = (tuple(logits.shape), tuple(tokens.shape), logits.dtype)
            entry = self.entries.get(key)
            if entry is None:
                try:
                    entry = self._capture(constraint, logits, tokens, positions)
                except Exception as exc:  # any capture problem: stay correct, lose speed
                    entry, self.failure = None, f"{type(exc).__name__}: {exc}"
                if entry is None:
                    self.enabled = False
                    return constraint(logits, tokens, positions)
                self.entries[key] = entry
            graph, static, inputs, output = entry
            for buffer, value in (
                *zip(inputs, (logits, tokens, positions)),
                (static.destinations, constraint.destinations),
                (static.hops, constraint.hops),
                (static.limits, constraint.limits),
            ):
                buffer.copy_(value)
            graph.replay()
            return output

        return call

    def _capture(
        self, constraint: TopologyConstraint, logits: Tensor, tokens: Tensor, positions: Tensor
    ) -> tuple | None:
        static = TopologyConstraint(
            constraint.successors,
            constraint.destinations.clone(),
            constraint.hops.clone(),
            eos_id=constraint.eos_id,
            mask_id=constraint.mask_id,
            limits=constraint.limits.clone(),
            static=True,
        )
        inputs = (logits.clone(), tokens.clone(), positions.clone())
        expected = constraint(logits, tokens, positions)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            static(*inputs)  # warm-up outside the capture (lazy initialisation, allocator)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            output = static(*inputs)
        graph.replay()
        if not torch.equal(output, expected):
            self.failure = "the captured constraint differs from the eager one"
            return None
        return graph, static, inputs, output
