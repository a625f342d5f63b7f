"""Training-step throughput of a DiT-B-sized model through difforge's Trainer: fp32 eager vs bf16
eager vs bf16 + torch.compile.

The model is ``DiTBackbone`` preset ``large`` (hidden 768, 12 layers, 12 heads: the size of DiT-B)
on 256 tokens of 16 channels (a 32x32x4 latent in 2x2 patches, as DiT-B/2 at 256 px), conditioned
on the timestep and one of 1000 classes, trained with a rectified-flow velocity loss. Every step
goes through the real Trainer (sampler + DataLoader, AdamW, clipping, EMA), so the numbers include
its overheads. Each variant trains ``2 * window`` steps; the first window (warm-up, compilation)
is discarded and the second is timed between two log points (each of which waits for the GPU).

    python benchmarks/train_throughput.py            # CUDA if available; writes benchmarks/results/
    python benchmarks/train_throughput.py --quick    # tiny model on CPU, under a minute

Writes ``train_throughput[_quick].json`` and ``.md`` (card, date, command) to ``--out-dir``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from _report import RESULTS_DIR, environment, header_lines, write_report
from torch.utils.data import Dataset

from difforge.core.nn.dit import DiTBackbone
from difforge.core.train import TrainConfig, Trainer

NUM_CLASSES = 1000


class RandomLatents(Dataset):
    """Fixed random "latents" and labels: the benchmark times training, not data loading."""

    def __init__(self, size: int, seq_len: int, channels: int) -> None:
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(size, seq_len, channels, generator=gen)
        self.y = torch.randint(0, NUM_CLASSES, (size,), generator=gen)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "y": self.y[i]}


def flow_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Rectified flow: x_t = (1 - t) x0 + t noise, predict the velocity noise - x0."""
    x0 = batch["x"]
    t = torch.rand(x0.shape[0], device=x0.device)
    noise = torch.randn_like(x0)
    x_t = (1 - t[:, None, None]) * x0 + t[:, None, None] * noise
    pred = model(x_t, timestep=t * 1000, class_labels=batch["y"]).sample
    return F.mse_loss(pred.float(), noise - x0)


def run_variant(args: argparse.Namespace, device: str, precision: str, compile_model: bool) -> dict:
    torch.manual_seed(0)
    model = DiTBackbone.from_preset(
        args.preset, in_channels=args.channels, max_seq_len=args.seq_len, num_classes=NUM_CLASSES
    )
    n_params = sum(p.numel() for p in model.parameters())
    data = RandomLatents(max(args.batch_size * 4, 64), args.seq_len, args.channels)
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as out_dir:
        config = TrainConfig(
            steps=2 * args.window,
            batch_size=args.batch_size,
            lr=1e-4,
            warmup_steps=0,
            grad_clip=1.0,
            ema_decay=0.9999,
            mixed_precision=precision,
            compile=compile_model,
            log_every=args.window,
            ckpt_every=0,
            keep_checkpoints=1,
            tensorboard=False,
            progress=False,
            out_dir=out_dir,
        )
        logs = Trainer(model, flow_loss, data, config).train().logs
    samples_per_s = logs["samples_per_s"]
    row = {
        "precision": precision,
        "compile": compile_model,
        "samples_per_s": round(samples_per_s, 2),
        "ms_per_step": round(1000 * args.batch_size / samples_per_s, 3),
        "final_loss": round(logs["loss"], 5),
        "params_m": round(n_params / 1e6, 2),
    }
    if device == "cuda":
        row["peak_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print(json.dumps(row), flush=True)
    return row


def markdown(report: dict) -> str:
    base = report["results"][0]["samples_per_s"]
    lines = [
        "# Training throughput: DiTBackbone through difforge.core.train.Trainer",
        "",
        *header_lines(report),
        f"- model: preset `{report['preset']}` ({report['results'][0]['params_m']} M params), "
        f"{report['seq_len']} tokens x {report['channels']} channels, batch {report['batch_size']}, "
        f"AdamW + grad clip + EMA, rectified-flow loss; timed over {report['window']} steps after "
        f"{report['window']} warm-up steps",
        "",
        "| precision | torch.compile | samples/s | ms/step | speed-up | peak GPU mem (GiB) |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for row in report["results"]:
        lines.append(
            f"| {row['precision']} | {'yes' if row['compile'] else 'no'} | {row['samples_per_s']:.1f} "
            f"| {row['ms_per_step']:.1f} | {row['samples_per_s'] / base:.2f}x | {row.get('peak_mem_gib', '-')} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny model on CPU, under a minute")
    parser.add_argument("--preset", default="large")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--window", type=int, default=50, help="warm-up steps = timed steps")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()
    if args.quick:
        args.preset, args.batch_size, args.seq_len, args.window = "tiny", 8, 32, 3
    device = "cuda" if torch.cuda.is_available() and not args.quick else "cpu"
    if device == "cpu" and not args.quick:
        print("no CUDA device: timing on CPU", file=sys.stderr)

    variants = [("no", False), ("bf16", False)]
    if not args.no_compile and not args.quick:  # compiling takes minutes on a CPU
        variants.append(("bf16", True))
    results = [run_variant(args, device, precision, compiled) for precision, compiled in variants]

    report = {
        "benchmark": "train_throughput",
        **environment(device),
        "preset": args.preset,
        "batch_size": args.batch_size,
        "seq_len": args.seq_len,
        "channels": args.channels,
        "window": args.window,
        "results": results,
    }
    stem = "train_throughput_quick" if args.quick else "train_throughput"
    write_report(args.out_dir, stem, report, markdown(report))


if __name__ == "__main__":
    main()
