"""A tiny trained model for the tests that run the model commands: dataset -> fit -> train-vae ->
train through the command line, built once per test session."""

from __future__ import annotations

import pytest
import torch

from difforge.scene.cli import main

FIT_ARGS = ["--channels", "4", "--plane-resolution", "8", "--hidden", "16", "--layers", "1",
            "--iterations", "15", "--points-per-step", "64", "--surface-points", "512",
            "--space-points", "512", "--keep-surface", "128", "--eval-blocks", "1",
            "--device", "cpu"]  # fmt: skip


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A folder with datasets train/ and test/, the fit fit/, the VAE vae/ and the model model/."""
    root = tmp_path_factory.mktemp("pipeline")
    torch.manual_seed(0)
    # Test seed 5: its room is long enough along x for seam pairs wholly inside it (5.6 m).
    for name, seed, n in (("train", 1, 10), ("test", 5, 6)):
        args = ["dataset", "--n", str(n), "--seed", str(seed), "--out", str(root / name)]
        assert main([*args, "--resolution", "16", "--no-sdf"]) == 0
    assert main(["fit", "--data", str(root / "train"), "--out", str(root / "fit"), *FIT_ARGS]) == 0
    vae = ["train-vae", "--fit", str(root / "fit"), "--out", str(root / "vae"), "--config", "tiny"]
    assert main([*vae, "train.steps=10", "eval_blocks=1"]) == 0
    train = ["train", "--fit", str(root / "fit"), "--vae", str(root / "vae"), "--config", "tiny"]
    assert main([*train, "--out", str(root / "model"), "train.steps=10"]) == 0
    return root
