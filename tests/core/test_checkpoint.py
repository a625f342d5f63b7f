"""difforge.core.train.checkpoint: exact round trips, atomic writes, clear errors on bad folders."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers.training_utils import EMAModel
from safetensors.torch import load_file
from torch import nn

from difforge.core.errors import CheckpointError
from difforge.core.train import checkpoint as ckpt_module
from difforge.core.train.checkpoint import (
    atomic_dir,
    capture_rng_state,
    check_model_config,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    restore_rng_state,
    save_checkpoint,
)


class TiedLM(nn.Module):
    """Embedding and output head share one weight, as in a DiT with tied embeddings."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(11, 6)
        self.mid = nn.Linear(6, 6)
        self.head = nn.Linear(6, 11, bias=False)
        self.head.weight = self.embed.weight
        self.register_buffer("steps", torch.tensor(3))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.mid(self.embed(ids))))


def _trained_state(
    seed: int = 0,
) -> tuple[TiedLM, torch.optim.Optimizer, EMAModel, torch.optim.lr_scheduler.LambdaLR]:
    torch.manual_seed(seed)
    model = TiedLM()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (s + 1))
    ema = EMAModel(model.parameters(), decay=0.9, foreach=True)
    for _ in range(3):
        ids = torch.randint(0, 11, (4, 5))
        nn.functional.cross_entropy(model(ids).flatten(0, 1), ids.flatten()).backward()
        opt.step()
        sched.step()
        opt.zero_grad()
        ema.step(model.parameters())
    return model, opt, ema, sched


def _components(model, opt, ema, sched) -> dict:
    return {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "ema": ema.state_dict(),
        "scheduler": sched.state_dict(),
        "rng": [capture_rng_state()],
        "data": {"samples_seen": 96},
    }


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_round_trip_is_exact_and_model_file_stands_alone(tmp_path: Path) -> None:
    model, opt, ema, sched = _trained_state()
    path = save_checkpoint(
        tmp_path,
        3,
        _components(model, opt, ema, sched),
        config={"lr": 0.01},
        model_config={"dim": 6},
    )
    assert path == tmp_path / "step_00000003"
    assert sorted(p.name for p in path.iterdir()) == [
        "ema.safetensors",
        "model.safetensors",
        "optimizer.safetensors",
        "rng.safetensors",
        "state.json",
    ]
    # The model file is a plain safetensors state dict (the tied weight stored once).
    assert set(load_file(path / "model.safetensors")) == {
        "embed.weight",
        "mid.weight",
        "mid.bias",
        "steps",
    }

    loaded = load_checkpoint(path)
    assert loaded.step == 3 and loaded.config == {"lr": 0.01} and loaded.model_config == {"dim": 6}

    model2, opt2, ema2, sched2 = _trained_state(seed=1)
    model2.load_state_dict(loaded.components["model"])
    opt2.load_state_dict(loaded.components["optimizer"])
    ema2.load_state_dict(loaded.components["ema"])
    sched2.load_state_dict(loaded.components["scheduler"])
    assert model2.head.weight is model2.embed.weight
    for key, value in model.state_dict().items():
        assert torch.equal(value, model2.state_dict()[key]), key
    a, b = opt.state_dict(), opt2.state_dict()
    assert a["param_groups"] == b["param_groups"]  # tuples (betas) and int keys survive JSON
    for pid, state in a["state"].items():
        for name, value in state.items():
            assert torch.equal(value, b["state"][pid][name]), (pid, name)
    assert all(torch.equal(x, y) for x, y in zip(ema.shadow_params, ema2.shadow_params))
    assert ema2.optimization_step == ema.optimization_step == 3
    assert sched2.state_dict() == sched.state_dict()
    assert loaded.components["data"] == {"samples_seen": 96}


def test_rng_states_round_trip(tmp_path: Path) -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    path = save_checkpoint(tmp_path, 1, {"rng": [capture_rng_state()]})
    expected = (random.random(), np.random.rand(), torch.rand(3))
    state = json.loads((path / "state.json").read_text())
    assert "__ndarray__" in json.dumps(state)  # numpy's key array is JSON, nothing pickled
    restore_rng_state(load_checkpoint(path).components["rng"][0])
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert (
        expected[0] == again[0] and expected[1] == again[1] and torch.equal(expected[2], again[2])
    )


def test_missing_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"^checkpoint not found: .*nowhere$"):
        load_checkpoint(tmp_path / "nowhere")
    save_checkpoint(tmp_path, 5, {"data": {"x": 1}})
    with pytest.raises(
        CheckpointError, match=r"no state\.json.*it holds checkpoints: pass .*step_00000005"
    ):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize(
    "damage", ["truncate_tensors", "corrupt_tensors", "delete_tensors", "truncate_state"]
)
def test_damaged_checkpoint_is_refused_with_one_line(tmp_path: Path, damage: str) -> None:
    model, opt, ema, sched = _trained_state()
    path = save_checkpoint(tmp_path, 3, _components(model, opt, ema, sched))
    target = path / ("state.json" if damage == "truncate_state" else "optimizer.safetensors")
    data = target.read_bytes()
    if damage.startswith("truncate"):
        target.write_bytes(data[: len(data) // 2])
    elif damage == "corrupt_tensors":
        target.write_bytes(b"\xff" * 8 + data[8:])  # same size, garbage header length
    else:
        target.unlink()
    before = _snapshot(tmp_path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "\n" not in message
    expected = {
        "truncate_tensors": "is truncated or corrupt",
        "corrupt_tensors": "is corrupt",
        "delete_tensors": "is incomplete: optimizer.safetensors is missing",
        "truncate_state": "is truncated or corrupt: state.json",
    }[damage]
    assert expected in message
    assert _snapshot(tmp_path) == before  # loading never writes


def test_interrupted_save_leaves_nothing_partial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, opt, ema, sched = _trained_state()
    good = save_checkpoint(tmp_path, 3, _components(model, opt, ema, sched))
    before = _snapshot(tmp_path)

    calls = []
    real_save_file = ckpt_module.save_file

    def crash_on_second_file(tensors, filename, metadata=None):
        calls.append(filename)
        if len(calls) == 2:
            Path(filename).write_bytes(b"partial")
            raise OSError("disk full")
        real_save_file(tensors, filename, metadata=metadata)

    monkeypatch.setattr(ckpt_module, "save_file", crash_on_second_file)
    for step in (4, 3):  # a new checkpoint, and one replacing the existing step 3
        calls.clear()
        with pytest.raises(OSError, match="disk full"):
            save_checkpoint(tmp_path, step, _components(model, opt, ema, sched))
        assert _snapshot(tmp_path) == before  # no new folder, no temp files, old one intact
        assert sorted(p.name for p in tmp_path.iterdir()) == [good.name]
    assert load_checkpoint(good).step == 3


def test_atomic_dir_replaces_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "export"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("one")
    with pytest.raises(RuntimeError), atomic_dir(target, overwrite=True) as tmp:
        (tmp / "a.txt").write_text("two")
        raise RuntimeError
    assert (target / "a.txt").read_text() == "one"
    with atomic_dir(target, overwrite=True) as tmp:
        (tmp / "b.txt").write_text("three")
    assert [p.name for p in target.iterdir()] == ["b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["export"]


def test_latest_and_pruning_skip_unfinished_folders(tmp_path: Path) -> None:
    for step in (10, 2, 30):
        save_checkpoint(tmp_path, step, {"data": {"step": step}})
    (tmp_path / "step_00000040").mkdir()  # no state.json: never finished
    (tmp_path / ".step_00000050.x.tmp").mkdir()
    assert latest_checkpoint(tmp_path) == tmp_path / "step_00000030"
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "step_00000002",
        "step_00000010",
        "step_00000030",
    ]
    assert prune_checkpoints(tmp_path, 0) == []
    assert prune_checkpoints(tmp_path, 2) == [tmp_path / "step_00000002"]
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000010", "step_00000030"]
    assert latest_checkpoint(tmp_path / "absent") is None


def test_changed_model_config_is_refused_listing_keys(tmp_path: Path) -> None:
    path = save_checkpoint(
        tmp_path, 1, {"data": {}}, model_config={"hidden": 8, "layers": 2, "rope": True}
    )
    loaded = load_checkpoint(path)
    check_model_config(loaded, {"hidden": 8, "layers": 2, "rope": True})
    with pytest.raises(
        CheckpointError,
        match=r"was trained with a different model config; differing keys: hidden, rope$",
    ):
        check_model_config(loaded, {"hidden": 16, "layers": 2, "rope": False})
