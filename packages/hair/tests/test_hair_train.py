"""Training under a wall-clock limit (``time_limit_s=``): an early stop that still writes the
codec folder, then a rerun that resumes the same run to its last step."""

from __future__ import annotations

import json

from difforge.hair.cli import main


def test_time_limit_stops_codec_training_early_and_a_rerun_resumes(tmp_path):
    args = ["train-codec", "--out", str(tmp_path / "codec"), "--config", "tiny", "data.styles=2"]
    # Any step outlasts a nanosecond: the run stops after its first step whatever the machine.
    assert main([*args, "time_limit_s=1e-9"]) == 0
    metrics = json.loads((tmp_path / "codec" / "metrics.json").read_text())
    assert (metrics["steps"], metrics["planned_steps"]) == (1, 30)
    assert metrics["stopped_by"] == "time_limit" and metrics["held_out"]["position_mm"] > 0

    assert main(args) == 0  # no limit: resumes from the step-1 checkpoint
    metrics = json.loads((tmp_path / "codec" / "metrics.json").read_text())
    assert (metrics["steps"], metrics["stopped_by"]) == (30, "steps")
