"""Train the rebuilt HOSER on a dataset folder, generate trips with its search, score them.

    python packages/traj/scripts/hoser_reproduce.py DATASET_DIR OUT_DIR [--epochs 25] [--trips 3000]

Writes OUT_DIR/model (safetensors + config.json), OUT_DIR/generated.csv, OUT_DIR/scores.json
(the harness's HOSER-protocol metrics against test.csv, and the test next-step accuracy).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from difforge.traj.baselines.hoser import hoser_requests, next_step_accuracy, search, train_hoser
from difforge.traj.bench import od_grid
from difforge.traj.data.hoser import read_dataset, write_trajectories
from difforge.traj.evaluate import evaluate_trajectories


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--trips", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    graph, splits = read_dataset(args.dataset)
    started = time.perf_counter()
    model, history = train_hoser(
        graph, splits["train"], val=splits.get("val"), epochs=args.epochs, seed=args.seed, log=print
    )
    model.save_pretrained(args.out / "model")
    trained = time.perf_counter() - started
    accuracy = next_step_accuracy(model, splits["test"])
    print(f"trained in {trained:.0f} s, test next-step accuracy {accuracy:.4f}", flush=True)
    requests = hoser_requests(splits["train"], args.trips, seed=args.seed)
    started = time.perf_counter()
    trips = search(
        model, requests, on_trip=lambda i: (i + 1) % 250 or print(f"{i + 1} trips", flush=True)
    )
    generated = time.perf_counter() - started
    write_trajectories(args.out / "generated.csv", trips.rids, trips.times)
    scores = evaluate_trajectories(
        graph,
        splits["test"],
        trips,
        requested_destinations=requests.destinations,
        grid=od_grid(graph, args.dataset),
    )
    scores = {
        **scores,
        "test_next_step_accuracy": accuracy,
        "train_seconds": trained,
        "generate_seconds": generated,
        "history": history,
    }
    (args.out / "scores.json").write_text(json.dumps(scores, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in scores.items() if k != "history"}, default=str))


if __name__ == "__main__":
    main()
