"""``difforge-traj train`` under a wall-clock limit: an early stop that still saves a loadable
model and says so, then ``--resume`` to the planned last step."""

from __future__ import annotations

import json

from difforge.traj.cli import main
from difforge.traj.data.hoser import write_roadmap, write_trajectories
from difforge.traj.data.synthetic import synthetic_city, synthetic_trips
from difforge.traj.model import TrajDLM


def test_time_limit_stops_training_early_and_resume_finishes(tmp_path, capsys):
    data = tmp_path / "city"
    city = synthetic_city(3, seed=0)
    write_roadmap(city, data)
    write_trajectories(data / "train.csv", *synthetic_trips(city, 60, seed=1))
    out = tmp_path / "model"
    args = ["train", "--data", str(data), "--out", str(out), "--config", "tiny", "train.steps=5"]
    # Any step outlasts a nanosecond: the run stops after its first step whatever the machine.
    assert main([*args, "time_limit_s=1e-9"]) == 0
    assert "stopped by time_limit_s at step 1 of 5" in capsys.readouterr().out
    training = json.loads((out / "config.json").read_text())["training"]
    assert (training["steps"], training["stopped_by"]) == (1, "time_limit")
    TrajDLM.from_pretrained(out)  # the early stop saved a complete model

    assert main([*args, "--resume"]) == 0
    training = json.loads((out / "config.json").read_text())["training"]
    assert (training["steps"], training["planned_steps"], training["stopped_by"]) == (5, 5, "steps")
