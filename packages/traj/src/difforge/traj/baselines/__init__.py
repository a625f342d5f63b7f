"""Baselines in the evaluation harness: every one answers the diffusion model's question.

Given OD requests (origin and destination segments, departure times;
:func:`difforge.traj.data.requests.sample_od_requests`), each returns one segment sequence per
request; :func:`~difforge.traj.baselines.travel_times.timed` adds HOSER-style per-segment entry
times from the training set's mean speed per segment, so every method is scored by the same
:func:`difforge.traj.evaluate.evaluate_trajectories`.

- :mod:`~difforge.traj.baselines.routes`: shortest path, the most frequent training route, and a
  Markov chain walked toward the destination;
- :mod:`~difforge.traj.baselines.hoser`: HOSER (Cao et al., AAAI 2025) rebuilt after its paper
  and public code: KaHIP zones, road-network and trajectory encoders, navigator, best-first search
  (it predicts its own entry times);
- :mod:`~difforge.traj.baselines.travel_times`: entry times for paths that carry none.
"""
