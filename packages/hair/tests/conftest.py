"""A tiny trained model for the tests that run the model commands: dataset -> train-codec ->
train through the command line, built once per test session."""

from __future__ import annotations

import pytest

from difforge.hair.cli import main

# Small styles: 300 root candidates of 16 points, 64 px pictures.
SMALL = ["--root-candidates", "300", "--points", "16", "--image-size", "64"]


@pytest.fixture(scope="session")
def small() -> list[str]:
    """The sample flags of the tiny dataset, for commands that must match it."""
    return list(SMALL)


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A folder with the dataset data/, the codec codec/ and the model model/ (run: model-run/)."""
    root = tmp_path_factory.mktemp("hair_model")
    data = root / "data"
    assert main(["dataset", "--n", "3", "--seed", "5", "--out", str(data), *SMALL]) == 0
    codec = root / "codec"
    assert main(["train-codec", "--data", str(data), "--out", str(codec), "--config", "tiny"]) == 0
    model = root / "model"
    args = ["train", "--data", str(data), "--codec", str(codec), "--out", str(model)]
    assert main([*args, "--config", "tiny", "train.steps=10"]) == 0
    return root
