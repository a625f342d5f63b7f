"""Parameters and training-step time of a scalp-texture DiT preset (with overrides).

Usage: python packages/hair/benchmarks/train_step.py [--config default] [--latent-dim 16]
       [--batch 8] [--steps 5] [--device auto] [--profile] [--compile] [key=value ...]
e.g. ``model.patch_size=2`` or ``channel_weights=codec``. Random textures and pictures of the
preset's sizes (the cost does not depend on the data); one AdamW step per training step, with
the loss the ``train`` command builds, under bf16 autocast on a GPU when the preset trains in
bf16. Prints one JSON object: parameters, the DiT's outputs per token against its width (the
output head's rank bound) and the median seconds per step after one warm-up step.
``--compile``: the step through ``torch.compile`` (as ``train.compile=true`` trains; the warm-up
step then includes the compilation). ``--profile``: also prints (to stderr) torch.profiler's table of the operators that took the most
device time over the timed steps, to see what a step's time goes to.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time

import torch

from difforge.core.cli import load_preset, resolve_device
from difforge.core.config import to_dict
from difforge.core.diffusion.gaussian import EDMLoss
from difforge.core.nn import num_parameters
from difforge.core.timing import synchronize
from difforge.hair import DIFFUSION_PRESETS
from difforge.hair.model import (
    ScalpDiffusion,
    images_to_tensor,
    make_edm_scheduler,
)
from difforge.hair.run_config import DiffusionRunConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="default", help="diffusion preset or YAML file")
    parser.add_argument("--latent-dim", type=int, default=16, help="the codec's latent size")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--profile", action="store_true", help="print the top operators")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    args = parser.parse_args()
    config = load_preset(DiffusionRunConfig, DIFFUSION_PRESETS, args.config, args.overrides)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    channels = args.latent_dim + 1
    diffusion = ScalpDiffusion(
        texture_channels=channels, image_size=config.data.image_size, **to_dict(config.model)
    ).to(device)
    side, size = config.model.resolution, config.data.image_size
    tokens = diffusion.textures_to_tokens(
        torch.randn(args.batch, channels, side, side, device=device)
    )
    images = images_to_tensor(torch.randint(0, 256, (args.batch, size, size, 3), dtype=torch.uint8))
    scheduler = make_edm_scheduler(config.sampling, "edm_euler")
    noise_levels = {"p_mean": config.p_mean, "p_std": config.p_std}
    features = None  # "codec" weights: the cost only, any weights of the right size will do
    if config.channel_weights == "codec":
        features = torch.rand(tokens.shape[-1], device=device)
    loss_fn = EDMLoss(scheduler, feature_weights=features, **noise_levels)
    optimizer = torch.optim.AdamW(diffusion.parameters(), lr=1e-4)
    bf16 = config.train.mixed_precision == "bf16" and device.type == "cuda"
    step_model = torch.compile(diffusion) if args.compile else diffusion
    seconds = []
    profiler = contextlib.nullcontext()
    for step in range(args.steps + 1):
        if step == 1 and args.profile:  # after the warm-up step
            profiler = torch.profiler.profile()
            profiler.__enter__()
        synchronize(device)
        started = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(step_model, tokens, {"image": images.to(device)})
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        synchronize(device)
        seconds.append(time.perf_counter() - started)
    if args.profile:
        profiler.__exit__(None, None, None)
        sort_by = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        print(profiler.key_averages().table(sort_by=sort_by, row_limit=20), file=sys.stderr)
    outputs = tokens.shape[-1]
    report = {
        "config": args.config,
        "overrides": args.overrides,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "bf16_autocast": bf16,
        "compile": args.compile,
        "batch": args.batch,
        "tokens": tokens.shape[1],
        "outputs_per_token": outputs,
        "hidden_size": config.model.hidden_size,
        "parameters": num_parameters(diffusion),
        "parameters_dit": num_parameters(diffusion.dit),
        "seconds_per_step_median": sorted(seconds[1:])[len(seconds[1:]) // 2],
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
