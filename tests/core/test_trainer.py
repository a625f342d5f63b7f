"""difforge.core.train.Trainer: exact resume, time limit, accumulation, bf16, EMA export, refusals;
the sampler."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

from difforge.core.errors import CheckpointError, ConfigError, UserError
from difforge.core.train import ResumableBatchSampler, TrainConfig, Trainer, warmup_cosine
from difforge.core.train import trainer as trainer_module

DIM = 4
DATA = torch.randn(20, DIM, generator=torch.Generator().manual_seed(0))


class TinyDenoiser(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, dim: int = DIM, hidden: int = 16, dropout: float = 0.2) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim + 1, hidden), nn.Dropout(dropout), nn.SiLU(), nn.Linear(hidden, dim)
        )

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, sigma[:, None]], dim=-1))


def noisy_loss(model: nn.Module, x0: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A denoising loss: it draws noise levels and noise from the global RNG, like diffusion."""
    sigma = torch.rand(x0.shape[0], device=x0.device)
    noisy = x0 + sigma[:, None] * torch.randn_like(x0)
    return F.mse_loss(model(noisy, sigma), x0), {"sigma": sigma.mean()}


def generated_batches(start_batch: int) -> Iterator[torch.Tensor]:
    """A data factory: batch i is generated from seed i, so it can start anywhere."""
    i = start_batch
    while True:
        yield torch.randn(4, DIM, generator=torch.Generator().manual_seed(1000 + i))
        i += 1


def make_trainer(
    out_dir: Path, *, init_seed: int = 0, data=DATA, model_kw=None, loss_fn=noisy_loss, **overrides
) -> Trainer:
    torch.manual_seed(init_seed)
    model = TinyDenoiser(**(model_kw or {}))
    settings = dict(
        steps=12,
        batch_size=4,
        grad_accum=2,
        lr=1e-2,
        min_lr=1e-3,
        warmup_steps=3,
        grad_clip=0.5,
        ema_decay=0.9,
        log_every=4,
        ckpt_every=100,
        seed=7,
        tensorboard=False,
        progress=False,
        out_dir=str(out_dir),
    )
    settings.update(overrides)
    return Trainer(model, loss_fn, data, TrainConfig(**settings))


def full_state(trainer: Trainer) -> dict[str, torch.Tensor]:
    state = {f"param.{k}": v for k, v in trainer.model.state_dict().items()}
    state.update({f"ema.{i}": p for i, p in enumerate(trainer.ema.shadow_params)})
    for pid, slots in trainer.optimizer.state_dict()["state"].items():
        state.update({f"opt.{pid}.{name}": v for name, v in slots.items()})
    return state


def assert_states_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize(
    ("data", "num_workers"),
    [(DATA, 0), (DATA, 2), (generated_batches, 0)],
    ids=["dataset", "dataset-2-workers", "factory"],
)
def test_resume_matches_uninterrupted_run_exactly(tmp_path: Path, data, num_workers: int) -> None:
    full = make_trainer(tmp_path / "full", data=data, num_workers=num_workers)
    assert full.train().step == 12

    first = make_trainer(tmp_path / "split", data=data, num_workers=num_workers)
    assert first.train(stop_at_step=5).step == 5
    assert first.ema.optimization_step == 5
    # A new process would build the model from scratch: different initial weights here.
    second = make_trainer(tmp_path / "split", data=data, init_seed=123, num_workers=num_workers)
    result = second.train(resume="latest")
    assert result.step == 12
    assert second.ema.optimization_step == 12
    assert_states_equal(full_state(full), full_state(second))


def test_time_limit_stops_early_saves_and_resumes_exactly(tmp_path: Path) -> None:
    full = make_trainer(tmp_path / "full")
    assert full.train().stopped_by == "steps"

    # A limit already spent by earlier work (started_at in the past): the run stops after the
    # step that first sees it (no sleeping: the outcome does not depend on the machine's speed).
    limited = make_trainer(tmp_path / "limited")
    logged = []
    result = limited.train(
        time_limit_s=60, started_at=time.monotonic() - 120, on_log=lambda *a: logged.append(a)
    )
    assert (result.step, result.planned_steps, result.stopped_by) == (1, 12, "time_limit")
    assert logged == [(1, result.logs)]  # the stop step's logs are flushed and reported
    assert result.checkpoint == tmp_path / "limited" / "checkpoints" / "step_00000001"
    assert result.export_dir == tmp_path / "limited" / "model"
    assert set(result.logs) >= {"loss", "lr"}
    assert result.summary()["stopped_by"] == "time_limit"
    exported = TinyDenoiser.from_pretrained(tmp_path / "limited" / "model")
    for p, shadow in zip(exported.parameters(), limited.ema.shadow_params):
        assert torch.equal(p, shadow.cpu())

    # A generous limit changes nothing; resuming the stopped run matches the uninterrupted one.
    resumed = make_trainer(tmp_path / "limited", init_seed=123)
    result = resumed.train(resume="latest", time_limit_s=3600)
    assert (result.step, result.stopped_by) == (12, "steps")
    assert_states_equal(full_state(full), full_state(resumed))
    with pytest.raises(ConfigError, match="time_limit_s"):
        resumed.train(resume="latest", time_limit_s=-1)


def test_load_ema_weights_puts_the_average_in_the_model(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, steps=3)
    trainer.train()
    model = trainer.load_ema_weights()
    assert model is trainer.model and not model.training
    for p, shadow in zip(model.parameters(), trainer.ema.shadow_params):
        assert torch.equal(p, shadow)


def test_resume_without_rng_restore_would_differ(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The control for the exact-resume test: shuffled data, dropout and noise make RNG matter.
    full = make_trainer(tmp_path / "full")
    full.train()
    make_trainer(tmp_path / "split").train(stop_at_step=5)
    monkeypatch.setattr(trainer_module, "restore_rng_state", lambda state: None)
    torch.manual_seed(999)
    skipped = make_trainer(tmp_path / "split")
    skipped.train(resume=tmp_path / "split" / "checkpoints" / "step_00000005")
    a, b = full.model.state_dict(), skipped.model.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_gradient_accumulation_matches_a_larger_batch(tmp_path: Path) -> None:
    def clean_loss(model: nn.Module, x0: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(model(x0, torch.zeros(x0.shape[0], device=x0.device)), x0)

    common = dict(
        model_kw={"dropout": 0.0}, loss_fn=clean_loss, shuffle=False, steps=3, ema_decay=0.0
    )
    big = make_trainer(tmp_path / "big", batch_size=8, grad_accum=1, **common)
    small = make_trainer(tmp_path / "small", batch_size=4, grad_accum=2, **common)
    big.train()
    small.train()
    for (name, a), b in zip(big.model.state_dict().items(), small.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name
    assert not torch.allclose(
        big.model.net[0].weight, make_trainer(tmp_path / "init", **common).model.net[0].weight
    )


def test_bf16_autocast_trains_fp32_weights(tmp_path: Path) -> None:
    seen_dtypes = []

    def loss_fn(model: nn.Module, x0: torch.Tensor) -> torch.Tensor:
        pred = model(x0, torch.zeros(x0.shape[0], device=x0.device))
        seen_dtypes.append(pred.dtype)
        return F.mse_loss(pred.float(), x0)

    trainer = make_trainer(tmp_path, loss_fn=loss_fn, mixed_precision="bf16", steps=3, grad_accum=1)
    before = trainer.model.net[0].weight.detach().clone()
    result = trainer.train()
    assert seen_dtypes == [torch.bfloat16] * 3
    assert trainer.model.net[0].weight.dtype == torch.float32
    assert not torch.equal(before, trainer.model.net[0].weight)
    assert math.isfinite(result.logs["loss"])


def test_logs_export_and_checkpoint_pruning(tmp_path: Path) -> None:
    trainer = make_trainer(
        tmp_path, steps=6, ckpt_every=2, keep_checkpoints=2, log_every=3, tensorboard=True
    )
    logged = []
    result = trainer.train(on_log=lambda step, logs: logged.append(step))
    assert logged == [3, 6]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "step_00000004",
        "step_00000006",
    ]
    assert result.checkpoint == tmp_path / "checkpoints" / "step_00000006"
    assert set(result.logs) == {"loss", "sigma", "lr", "grad_norm", "samples_per_s"}
    assert result.logs["lr"] == pytest.approx(1e-3)  # cosine ends at min_lr
    assert list((tmp_path / "logs").rglob("events.out.tfevents.*"))
    assert (tmp_path / "train_config.json").is_file()

    assert result.export_dir == tmp_path / "model"
    exported = TinyDenoiser.from_pretrained(tmp_path / "model")
    raw = TinyDenoiser.from_pretrained(tmp_path / "model_raw")
    for p, shadow in zip(exported.parameters(), trainer.ema.shadow_params):
        assert torch.equal(p, shadow.cpu())
    for p, q in zip(raw.parameters(), trainer.model.parameters()):
        assert torch.equal(p, q.cpu())
    assert not torch.equal(exported.net[0].weight, raw.net[0].weight)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_resume_refuses_changed_model_config_and_writes_nothing(tmp_path: Path) -> None:
    make_trainer(tmp_path, steps=4).train(stop_at_step=2)
    before = _snapshot(tmp_path)
    other = make_trainer(tmp_path, steps=4, model_kw={"hidden": 8, "dropout": 0.1})
    weights = {k: v.clone() for k, v in other.model.state_dict().items()}
    with pytest.raises(
        CheckpointError, match=r"different model config; differing keys: hidden, dropout$"
    ):
        other.train(resume="latest")
    assert _snapshot(tmp_path) == before
    assert_states_equal(weights, other.model.state_dict())


def test_resume_refuses_truncated_or_missing_checkpoint(tmp_path: Path) -> None:
    make_trainer(tmp_path, steps=4).train(stop_at_step=2)
    weights_file = tmp_path / "checkpoints" / "step_00000002" / "model.safetensors"
    weights_file.write_bytes(weights_file.read_bytes()[:100])
    before = _snapshot(tmp_path)
    trainer = make_trainer(tmp_path, steps=4)
    weights = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"model\.safetensors is truncated or corrupt"):
        trainer.train(resume="latest")
    with pytest.raises(CheckpointError, match=r"^checkpoint not found: .*step_00000009$"):
        trainer.train(resume=tmp_path / "checkpoints" / "step_00000009")
    assert _snapshot(tmp_path) == before
    assert_states_equal(weights, trainer.model.state_dict())


def test_fresh_start_refuses_a_folder_with_checkpoints(tmp_path: Path) -> None:
    make_trainer(tmp_path, steps=2).train()
    with pytest.raises(UserError, match="already holds checkpoints"):
        make_trainer(tmp_path, steps=2).train()


def test_warmup_cosine_schedule() -> None:
    lr = [warmup_cosine(s, warmup_steps=4, total_steps=14, min_ratio=0.1) for s in range(16)]
    assert lr[:4] == [0.25, 0.5, 0.75, 1.0]
    assert lr[4] == 1.0 and lr[9] == pytest.approx(0.55)
    assert lr[14] == pytest.approx(0.1) and lr[15] == pytest.approx(0.1)
    assert all(a >= b for a, b in itertools.pairwise(lr[4:]))


def test_sampler_epochs_are_permutations_and_resume_mid_stream() -> None:
    sampler = ResumableBatchSampler(10, 3, seed=5)
    stream = [i for _, batch in zip(range(10), sampler) for i in batch]  # 30 indices, 3 epochs
    for epoch in range(3):
        assert sorted(stream[epoch * 10 : (epoch + 1) * 10]) == list(range(10))
    assert stream[:10] != stream[10:20]
    resumed = ResumableBatchSampler(10, 3, seed=5, start_sample=13)
    assert [i for _, batch in zip(range(5), resumed) for i in batch] == stream[13:28]
    assert [
        i for _, b in zip(range(4), ResumableBatchSampler(10, 3, shuffle=False)) for i in b
    ] == [
        *range(10),
        0,
        1,
    ]


def test_sampler_ranks_split_each_global_batch() -> None:
    one = ResumableBatchSampler(7, 4, seed=1)
    ranks = [iter(ResumableBatchSampler(7, 2, seed=1, rank=r, world_size=2)) for r in range(2)]
    for batch in (b for _, b in zip(range(5), one)):
        assert next(ranks[0]) + next(ranks[1]) == batch
    with pytest.raises(ValueError, match="rank 2 is outside world size 2"):
        ResumableBatchSampler(7, 2, rank=2, world_size=2)
    assert np.array_equal(np.sort(one.epoch_order(3)), np.arange(7))


def test_train_runs_a_model_handed_over_in_eval_mode_in_training_mode(tmp_path: Path) -> None:
    modes: list[bool] = []

    def loss(model: nn.Module, x0: torch.Tensor):
        modes.append(model.training)
        return noisy_loss(model, x0)

    trainer = make_trainer(tmp_path, loss_fn=loss, steps=2, grad_accum=1, ema_decay=0.0)
    trainer.model.eval()  # e.g. after load_ema_weights, or a caller's evaluation
    trainer.train()
    assert modes == [True, True]


def test_corrupt_newest_checkpoint_falls_back_to_the_previous_one(tmp_path: Path) -> None:
    make_trainer(tmp_path, steps=4, ckpt_every=1, keep_checkpoints=0).train(stop_at_step=3)
    newest = tmp_path / "checkpoints" / "step_00000003" / "model.safetensors"
    newest.write_bytes(newest.read_bytes()[:100])
    trainer = make_trainer(tmp_path, steps=4, ckpt_every=1, keep_checkpoints=0)
    assert trainer._resume_path("latest").name == "step_00000002"


def test_a_killed_checkpoint_write_is_cleaned_up_on_the_next_run(tmp_path: Path) -> None:
    make_trainer(tmp_path, steps=2).train(stop_at_step=1)
    leftover = tmp_path / "checkpoints" / ".step_00000002.abc.tmp"
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"half")
    make_trainer(tmp_path, steps=2).train(resume="latest")
    assert not leftover.exists()
    assert (tmp_path / "checkpoints" / "step_00000002" / "state.json").is_file()


def test_two_runs_on_one_folder_do_not_overwrite_each_other(tmp_path: Path) -> None:
    from difforge.core.io import exclusive_lock

    with (
        exclusive_lock(tmp_path, "training run"),  # another process holds the run folder
        pytest.raises(UserError, match="in use by another training run"),
    ):
        make_trainer(tmp_path, steps=2).train()
    assert not (tmp_path / "checkpoints").exists()


def test_fresh_start_message_names_the_command_line_flag(tmp_path: Path) -> None:
    make_trainer(tmp_path, steps=2).train()
    with pytest.raises(UserError, match="with --resume"):
        make_trainer(tmp_path, steps=2).train()
