"""Topology-constrained sampling: exact allowed sets, legal trips that reach their destination,
classifier-free guidance, autoregressive decoding and travel times — on untrained tiny models."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from difforge.core.cli import load_preset
from difforge.core.errors import UserError
from difforge.traj import TRAIN_PRESETS
from difforge.traj.constraint import HopDistances, TopologyConstraint, successor_table
from difforge.traj.data.requests import ODRequests
from difforge.traj.data.synthetic import synthetic_city, synthetic_trips
from difforge.traj.model import SamplingConfig, TrajDLM, resolve_config
from difforge.traj.sample import TrajectorySampler, cut_trip
from difforge.traj.train import TrajTrainConfig

TINY = load_preset(TrajTrainConfig, TRAIN_PRESETS, "tiny").model  # the tiny size preset


@pytest.fixture(scope="module")
def city():
    return synthetic_city(4, seed=0)


@pytest.fixture(scope="module")
def trips(city):
    return synthetic_trips(city, 60, seed=3)


def random_model(city, block_size: int, max_len: int = 12) -> TrajDLM:
    """An untrained model with noisy weights (a fresh adaLN-Zero DiT would be too uniform)."""
    torch.manual_seed(block_size)
    config = resolve_config(
        dataclasses.replace(TINY, block_size=block_size, max_len=max_len), city, np.array([max_len])
    )
    model = TrajDLM(config).attach_graph(city)
    with torch.no_grad():
        for p in model.backbone.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    return model.eval()


def requests_of(trips) -> ODRequests:
    rids, times = trips
    return ODRequests(
        np.array([r[0] for r in rids]),
        np.array([r[-1] for r in rids]),
        np.array([t[0] for t in times], dtype="datetime64[s]"),
    )


# ----------------------------------------------------------------------------- brute force


def completable(city, canvas: list[int], destination: int, limit: int) -> bool:
    """Exact check by dynamic programming: can the masked positions (-1) of ``canvas`` be filled
    so that the trip is legal, ends at the destination within ``limit`` tokens, and is padded
    with EOS after it?"""
    n = city.num_segments
    eos = n
    states = {canvas[0]}
    for position, token in enumerate(canvas[1:], start=1):
        following = set()
        for s in states:
            if s in (eos, destination):
                following.add(eos)
            else:
                following.update(int(x) for x in city.successors(s))
        if position >= limit:
            following &= {eos}
        states = following if token < 0 else following & {token}
        if not states:
            return False
    return bool(states & {destination, eos})


def consistent_canvas(city, rng, trip: np.ndarray, length: int) -> tuple[list[int], int, int]:
    """A trip padded with EOS, with a random subset of positions masked (origin kept), and a
    random length limit the trip fits in."""
    eos = city.num_segments
    full = [*trip.tolist(), *[eos] * (length - len(trip))]
    keep = rng.random(length) < 0.4
    keep[0] = True
    limit = int(rng.integers(len(trip), length + 1))
    return [t if k else -1 for t, k in zip(full, keep)], int(trip[-1]), limit


def test_constraint_allows_exactly_the_completable_tokens(city, trips):
    """Where the left neighbour is committed, a token is allowed iff the trip can still be
    completed with it (rules 1-3 exactly); masked runs get candidates that can all be committed
    together, or in any subset, and still complete."""
    rng = np.random.default_rng(0)
    n = city.num_segments
    mask_id = n + 1
    length = 12
    successors = successor_table(city, n + 2)
    hops = HopDistances(city)
    checked_exact = checked_chains = 0
    for trip in trips[0]:
        if len(trip) > length:
            continue
        for _ in range(4):
            canvas, dest, limit = consistent_canvas(city, rng, trip, length)
            assert completable(city, canvas, dest, limit)
            tokens = torch.tensor([[mask_id if t < 0 else t for t in canvas]])
            constraint = TopologyConstraint(
                successors,
                torch.tensor([dest]),
                torch.from_numpy(hops.to(np.array([dest]))),
                eos_id=n,
                mask_id=mask_id,
                limits=torch.tensor([limit]),
            )
            logits = torch.randn(1, length, n + 2)
            logits[..., mask_id] = -torch.inf
            out = constraint(logits, tokens, torch.arange(length))[0]
            # The graph-capturable variant (no host syncs, every position) is the same function.
            constraint.static = True
            assert torch.equal(constraint(logits, tokens, torch.arange(length))[0], out)
            candidates = out.argmax(-1).tolist()
            for p in range(1, length):
                if canvas[p] >= 0 or canvas[p - 1] < 0:
                    continue
                allowed = set(torch.isfinite(out[p]).nonzero().flatten().tolist())
                expected = {
                    t
                    for t in range(n + 1)
                    if completable(city, [*canvas[:p], t, *canvas[p + 1 :]], dest, limit)
                }
                assert allowed == expected, (canvas, p)
                checked_exact += 1
            masked = [p for p in range(length) if canvas[p] < 0]
            for subset in (masked, [p for p in masked if rng.random() < 0.5]):
                filled = list(canvas)
                for p in subset:
                    filled[p] = candidates[p]
                assert completable(city, filled, dest, limit), (canvas, subset, candidates)
                checked_chains += 1
    assert checked_exact > 50 and checked_chains > 50


def test_constraint_samples_with_temperature_and_stays_legal(city, trips):
    n = city.num_segments
    successors = successor_table(city, n + 2)
    dest = int(trips[0][0][-1])
    tokens = torch.full((64, 10), n + 1)
    tokens[:, 0] = int(trips[0][0][0])
    constraint = TopologyConstraint(
        successors,
        torch.full((64,), dest),
        torch.from_numpy(HopDistances(city).to(np.full(64, dest))),
        eos_id=n,
        mask_id=n + 1,
        temperature=1.0,
        generator=torch.Generator().manual_seed(0),
    )
    logits = torch.zeros(64, 10, n + 2)
    logits[..., n + 1] = -torch.inf
    chains = constraint(logits, tokens, torch.arange(10)).argmax(-1)
    chains[:, 0] = tokens[:, 0]
    rows = {tuple(c.tolist()) for c in chains}
    assert len(rows) > 10  # flat logits + Gumbel noise: many different chains
    for chain in chains.tolist():
        trip = cut_trip(np.array(chain), dest, n)
        assert trip[-1] == dest and city.transition_legal(trip[:-1], trip[1:]).all()


# ----------------------------------------------------------------------------- sampler


SAMPLING_CASES = [
    ("diffusion, block 4, 8 steps", 4, {}),
    ("diffusion, block 8, 2 steps", 8, {"steps_per_block": 2}),
    ("diffusion, block 8, threshold", 8, {"steps_per_block": None, "threshold": 0.3}),
    ("diffusion, block 12, sampled", 12, {"temperature": 1.0}),
    ("autoregressive", 1, {"decoding": "autoregressive"}),
    ("diffusion, block 4, detour cap 2", 4, {"max_detour": 2}),
]


@pytest.mark.parametrize(
    ("name", "block", "options"), SAMPLING_CASES, ids=[c[0] for c in SAMPLING_CASES]
)
def test_untrained_model_gives_legal_trips_that_reach_the_destination(
    city, trips, name, block, options
):
    model = random_model(city, block)
    requests = requests_of(trips)
    sampler = TrajectorySampler(model, SamplingConfig(batch_size=16, **options))
    out = sampler.generate(requests, seed=1, show_progress=False)
    assert len(out) == len(requests)
    fewest = HopDistances(city).between(requests.origins, requests.destinations)
    for rids, origin, dest, hops in zip(out.rids, requests.origins, requests.destinations, fewest):
        assert rids[0] == origin and rids[-1] == dest
        assert city.transition_legal(rids[:-1], rids[1:]).all()
        assert dest not in rids[:-1]
        if "max_detour" in options:
            assert len(rids) - 1 <= hops + options["max_detour"]
    # An untrained model does not just take the shortest path (the constraint is not a planner).
    shortest = [
        len(city.shortest_path(int(o), int(d)))
        for o, d in zip(requests.origins, requests.destinations)
    ]
    assert np.mean([len(r) for r in out.rids]) > np.mean(shortest)


def test_without_the_constraint_the_untrained_model_breaks_the_rules(city, trips):
    model = random_model(city, 4)
    requests = requests_of(trips)
    out = TrajectorySampler(model, SamplingConfig(constrained=False)).generate(
        requests, seed=1, show_progress=False
    )
    # Most rows emit [EOS] right away (one-segment "trips"); the rest wander off the graph.
    good = [
        r[-1] == d and city.transition_legal(r[:-1], r[1:]).all()
        for r, d in zip(out.rids, requests.destinations)
    ]
    assert np.mean(good) < 0.2


def test_cut_trip_stops_at_the_destination_or_the_first_special_token():
    eos, mask = 10, 11
    assert cut_trip(np.array([1, 2, 3, 4, eos, eos]), 3, eos).tolist() == [1, 2, 3]
    assert cut_trip(np.array([1, 2, eos, 3, eos]), 3, eos).tolist() == [1, 2]
    assert cut_trip(np.array([1, mask, 3]), 3, eos).tolist() == [1]
    assert cut_trip(np.array([1, 2, 4]), 3, eos).tolist() == [1, 2, 4]


def test_long_trips_get_a_longer_canvas(city):
    # max_len 4 is shorter than some shortest paths: the canvas grows to fit hops(o -> d) + 1.
    model = random_model(city, 4, max_len=4)
    hops = HopDistances(city)
    far = np.argwhere(hops.all_pairs >= 6)[:5]  # (destination, origin) pairs
    requests = ODRequests(far[:, 1], far[:, 0], np.full(len(far), np.datetime64("NaT", "s")))
    out = TrajectorySampler(model, SamplingConfig()).generate(requests, show_progress=False)
    for rids, dest in zip(out.rids, requests.destinations):
        assert rids[-1] == dest and len(rids) >= 7
    assert all(t is None for t in out.times)  # no departure time, no timestamps


def test_guidance_runs_a_null_prompt_beside_the_real_one(city, trips):
    model = random_model(city, 4)
    requests = requests_of(trips)
    calls = []
    forward = model.backbone.forward

    def spy(tokens, **kwargs):
        calls.append((tokens.shape[0], kwargs.get("prefix_embeds")))
        return forward(tokens, **kwargs)

    model.backbone.forward = spy
    guided = TrajectorySampler(model, SamplingConfig(guidance_scale=0.5, batch_size=60))
    out_guided = guided.generate(requests, show_progress=False)
    batch, prefix = calls[0]
    assert batch == 2 * len(requests)
    null = model.null_condition(model.token_table(), 1)["prefix_embeds"][0]
    torch.testing.assert_close(prefix[len(requests) :], null.expand(len(requests), -1, -1))
    calls.clear()
    plain = TrajectorySampler(model, SamplingConfig(guidance_scale=0.0, batch_size=60))
    out_plain = plain.generate(requests, show_progress=False)
    assert calls[0][0] == len(requests)
    assert any(not np.array_equal(a, b) for a, b in zip(out_guided.rids, out_plain.rids))


def test_autoregressive_decoding_makes_one_call_per_token(city, trips):
    model = random_model(city, 1)
    calls = []
    forward = model.backbone.forward
    model.backbone.forward = lambda tokens, **kw: (
        calls.append(tokens.shape) or forward(tokens, **kw)
    )
    requests = requests_of(trips)
    single = ODRequests(requests.origins[:1], requests.destinations[:1], requests.departures[:1])
    sampler = TrajectorySampler(model, SamplingConfig(decoding="autoregressive", guidance_scale=0))
    out = sampler.generate(single, show_progress=False)
    # Tokens after the origin, one call each (the previous token's cache pass is fused in).
    assert len(calls) == len(out.rids[0]) - 1


def test_travel_times_follow_the_departure(city, trips):
    model = random_model(city, 4)
    requests = requests_of(trips)
    out = TrajectorySampler(model, SamplingConfig()).generate(requests, show_progress=False)
    for rids, times, end, depart in zip(out.rids, out.times, out.end_times, requests.departures):
        assert len(times) == len(rids) and times[0] == depart
        assert (np.diff(times.astype(np.int64)) >= 0).all() and end >= times[-1]
    mean_only = dataclasses.replace(SamplingConfig(), duration_sampling=False)
    again = TrajectorySampler(model, mean_only).generate(requests, seed=5, show_progress=False)
    other = TrajectorySampler(model, mean_only).generate(requests, seed=6, show_progress=False)
    assert all(np.array_equal(a, b) for a, b in zip(again.times, other.times))


def test_requests_with_unknown_segments_or_no_path_are_user_errors(city, trips):
    model = random_model(city, 4)
    sampler = TrajectorySampler(model, SamplingConfig())
    bad = ODRequests(
        np.array([0]), np.array([city.num_segments]), np.array(["NaT"], "datetime64[s]")
    )
    with pytest.raises(UserError, match="unknown destination"):
        sampler.generate(bad, show_progress=False)
    sampler.hops.all_pairs = sampler.hops.all_pairs.copy()
    sampler.hops.all_pairs[3, 0] = np.iinfo(np.int32).max // 2  # pretend 0 cannot reach 3
    unreachable = ODRequests(np.array([0]), np.array([3]), np.array(["NaT"], "datetime64[s]"))
    with pytest.raises(UserError, match="no legal path"):
        sampler.generate(unreachable, show_progress=False)


def test_networks_without_the_all_pairs_table_decode_the_same_trips(city, trips):
    # Above ALL_PAIRS_LIMIT segments hop counts come from one BFS per batch and the requests are
    # ordered by straight-line distance: the decoded trips must not change.
    model = random_model(city, 4)
    requests = requests_of(trips)
    config = SamplingConfig(batch_size=3, duration_sampling=False)
    table = TrajectorySampler(model, config).generate(requests, show_progress=False)
    sampler = TrajectorySampler(model, config)
    sampler.hops.all_pairs = None
    per_batch = sampler.generate(requests, show_progress=False)
    assert len(table.rids) == len(per_batch.rids) == len(requests)
    for a, b, destination in zip(table.rids, per_batch.rids, requests.destinations):
        np.testing.assert_array_equal(a, b)
        assert b[-1] == destination
