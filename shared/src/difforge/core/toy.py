"""Toy tasks with known answers for testing and benchmarking the core.

``gaussian_mixture`` draws the 2-D mixture of 8 Gaussians on a circle (continuous diffusion);
``fit_toy_model`` is the one small training loop the toy tests, demo and benchmarks share.

A known discrete sequence distribution (block discrete diffusion):

``MarkovChain.random_sparse`` builds a sparse random Markov chain over a few dozen states (each state
has a handful of legal successors); sequences start from the stationary distribution, so every
adjacent pair follows the same joint law ``pi(a) P(a, b)``. Generated sequences are judged by the
share of legal transitions and by the Jensen-Shannon divergence between their transition
frequencies and the chain's. ``MarkovChain.constraint`` is a logits constraint for the block
sampler that forbids every token which could no longer be completed into a legal sequence.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from difforge.core.metrics import jsd

__all__ = [
    "MarkovChain",
    "fit_toy_model",
    "gaussian_mixture",
    "legal_transition_rate",
    "transition_frequencies",
    "transition_jsd",
]


@dataclass(frozen=True)
class MarkovChain:
    """Row-stochastic transition matrix ``P`` ``(S, S)`` over states ``0..S-1`` (float64, CPU)."""

    transition: Tensor

    @classmethod
    def random_sparse(
        cls,
        num_states: int = 50,
        out_degree: int = 3,
        seed: int = 0,
        concentration: float | None = None,
    ) -> MarkovChain:
        """Each state gets ``out_degree`` successors with random probabilities.

        One successor follows a random cyclic permutation, which makes the chain irreducible; the
        others are random. If the chain comes out periodic a self-loop on state 0 makes it aperiodic
        (every state then reaches every state in some fixed number of steps). Successor
        probabilities are proportional to ``0.25 + U[0, 1)`` (fairly even), or with
        ``concentration`` Dirichlet-distributed: a small value (e.g. 0.3) makes most states nearly
        deterministic, like road segments that mostly continue one way.
        """
        if not 1 <= out_degree <= num_states:
            raise ValueError(f"out_degree must be in [1, {num_states}], got {out_degree}")
        gen = torch.Generator().manual_seed(seed)
        order = torch.randperm(num_states, generator=gen)
        allowed = torch.zeros(num_states, num_states, dtype=torch.bool)
        allowed[order, order.roll(-1)] = True
        for state in range(num_states):
            for other in torch.randperm(num_states, generator=gen).tolist():
                if int(allowed[state].sum()) >= out_degree:
                    break
                allowed[state, other] = True
        if not _is_primitive(allowed):
            allowed[0, 0] = True
        if concentration is None:
            weights = 0.25 + torch.rand(num_states, num_states, generator=gen, dtype=torch.float64)
        else:
            # Gamma draws normalised per row are Dirichlet; torch's gamma sampler takes no generator.
            rng = np.random.default_rng(seed)
            weights = torch.from_numpy(rng.gamma(concentration, size=(num_states, num_states)))
            weights = weights.clamp(min=1e-6)  # keep every allowed transition possible
        weights = weights * allowed
        return cls(weights / weights.sum(1, keepdim=True))

    @property
    def num_states(self) -> int:
        return self.transition.shape[0]

    @property
    def allowed(self) -> Tensor:
        """Legal transitions, bool ``(S, S)``."""
        return self.transition > 0

    def stationary(self) -> Tensor:
        """Stationary distribution ``pi`` (``pi P = pi``)."""
        values, vectors = torch.linalg.eig(self.transition.T)
        pi = vectors[:, torch.argmin((values - 1).abs())].real
        return pi / pi.sum()

    def joint(self) -> Tensor:
        """Law of an adjacent pair, ``pi(a) P(a, b)``, ``(S, S)``."""
        return self.stationary()[:, None] * self.transition

    def sample(self, num_sequences: int, length: int, seed: int = 0) -> Tensor:
        """``(num_sequences, length)`` state sequences started from the stationary distribution."""
        gen = torch.Generator().manual_seed(seed)
        out = torch.empty(num_sequences, length, dtype=torch.long)
        out[:, 0] = torch.multinomial(
            self.stationary().clamp(min=0), num_sequences, True, generator=gen
        )
        for i in range(1, length):
            out[:, i] = torch.multinomial(self.transition[out[:, i - 1]], 1, generator=gen)[:, 0]
        return out

    def reachable(self, max_steps: int) -> Tensor:
        """``R[d, a, b]``: state ``b`` follows ``a`` after exactly ``d`` steps, bool ``(max_steps+1, S, S)``."""
        step = self.allowed.double()
        out = [torch.eye(self.num_states, dtype=torch.bool)]
        for _ in range(max_steps):
            out.append((out[-1].double() @ step) > 0)
        return torch.stack(out)

    def constraint(self, mask_token_id: int, max_len: int):
        """Logits constraint for sequences up to ``max_len`` tokens, token ids = states.

        A state ``s`` at a masked position is allowed only if it can be reached from the nearest
        known token on its left in exactly that many steps and can reach the nearest known token on
        its right likewise. Each committed token therefore keeps the sequence completable, so a
        sampler committing one token per step produces only legal transitions. Tokens committed in
        parallel within one step are checked against the earlier tokens only.
        """
        reach = self.reachable(max_len)
        num_states = self.num_states

        def constrain(logits: Tensor, tokens: Tensor, positions: Tensor) -> Tensor:
            device = tokens.device
            batch, length = tokens.shape
            index = torch.arange(length, device=device).expand(batch, length)
            known = tokens != mask_token_id
            # Nearest known position strictly left / right of each position (-1 / length if none).
            left = torch.where(known, index, -1).cummax(1).values
            left = torch.cat([left.new_full((batch, 1), -1), left[:, :-1]], 1)[:, positions]
            flipped = torch.where(known, index, length).flip(1).cummin(1).values.flip(1)
            right = torch.cat([flipped[:, 1:], flipped.new_full((batch, 1), length)], 1)[
                :, positions
            ]
            table = reach.to(device)
            ok = torch.ones(batch, len(positions), num_states, dtype=torch.bool, device=device)
            has_left = left >= 0
            left_state = tokens.gather(1, left.clamp(min=0))
            from_left = table[
                (positions - left).clamp(max=max_len), left_state.clamp(max=num_states - 1)
            ]
            ok &= from_left | ~has_left[..., None]
            has_right = right < length
            right_state = tokens.gather(1, right.clamp(max=length - 1))
            to_right = table[
                (right - positions).clamp(max=max_len), :, right_state.clamp(max=num_states - 1)
            ]
            ok &= to_right | ~has_right[..., None]
            forbidden = torch.ones_like(logits, dtype=torch.bool)
            forbidden[..., :num_states] = ~ok
            forbidden[..., mask_token_id] = False  # left to the sampler (SUBS already forbids it)
            return logits.masked_fill(forbidden, -math.inf)

        return constrain


def transition_frequencies(tokens: Tensor, num_states: int) -> Tensor:
    """Empirical law of adjacent pairs of states ``(S, S)`` (pairs with a non-state token skipped)."""
    a, b = tokens[:, :-1].reshape(-1), tokens[:, 1:].reshape(-1)
    valid = (a >= 0) & (a < num_states) & (b >= 0) & (b < num_states)
    counts = torch.bincount(a[valid] * num_states + b[valid], minlength=num_states * num_states)
    return (counts.double() / counts.sum().clamp(min=1)).view(num_states, num_states)


def legal_transition_rate(tokens: Tensor, allowed: Tensor) -> float:
    """Share of adjacent pairs ``(a, b)`` that are legal transitions (a non-state token is illegal)."""
    num_states = allowed.shape[0]
    a, b = tokens[:, :-1].reshape(-1).cpu(), tokens[:, 1:].reshape(-1).cpu()
    valid = (a >= 0) & (a < num_states) & (b >= 0) & (b < num_states)
    legal = torch.zeros_like(valid)
    legal[valid] = allowed[a[valid], b[valid]]
    return legal.double().mean().item()


def transition_jsd(tokens: Tensor, chain: MarkovChain) -> float:
    """JSD (natural log) between the sequences' adjacent-pair frequencies and the chain's joint law."""
    return jsd(transition_frequencies(tokens.cpu(), chain.num_states), chain.joint())


def _is_primitive(allowed: Tensor) -> bool:
    # Wielandt: an S-state chain is primitive iff every entry of P^k is positive for one (then all)
    # k >= (S-1)^2 + 1; repeated squaring reaches such a k in a few products.
    n = allowed.shape[0]
    power = allowed.double()
    for _ in range(max(1, ((n - 1) ** 2 + 1).bit_length())):
        power = ((power @ power) > 0).double()
    return bool(power.bool().all())


def gaussian_mixture(
    n: int,
    *,
    modes: int = 8,
    radius: float = 2.0,
    std: float = 0.1,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """``n`` points from ``modes`` isotropic Gaussians evenly spaced on a circle, shape ``(n, 2)``."""
    device = generator.device if generator is not None and device is None else device
    which = torch.randint(0, modes, (n,), generator=generator, device=device)
    angle = which.float() * (2 * math.pi / modes)
    centres = radius * torch.stack([angle.cos(), angle.sin()], dim=1)
    return centres + std * torch.randn(n, 2, generator=generator, device=device)


def fit_toy_model(
    model: torch.nn.Module,
    loss_fn: Callable[..., Tensor],
    draw_batch: Callable[[torch.Generator], Tensor],
    *,
    steps: int,
    lr: float,
    call: Callable[..., Tensor] | None = None,
    seed: int = 0,
    grad_clip: float = 1.0,
    bf16: bool = False,
) -> float:
    """Train ``model`` in place for ``steps`` AdamW steps (one-cycle schedule); return the last loss.

    ``loss_fn(call, batch, generator=...)`` is any core loss; ``call`` adapts the model to the
    loss's calling convention (default: the model itself); ``draw_batch(generator)`` gives a batch
    already on the model's device. For the toy tasks only: real training uses the core Trainer.
    """
    call = model if call is None else call
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=steps, pct_start=0.1
    )
    generator = torch.Generator(device=device).manual_seed(seed)
    model.train()
    loss = torch.zeros(())
    for _ in range(steps):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(call, draw_batch(generator), generator=generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        schedule.step()
    model.eval()
    return float(loss.detach())
