"""diffusers cache hooks on the core DiT: speed-up and sample change at 50 DPM-Solver++ steps.

Trains a DiT on the 2-D mixture of 8 Gaussians (flow matching; each point one token, a large batch
so the GPU is busy), then samples the same noise with and without each hook. Reports wall time per
sampling run, the speed ratio, the sliced W2 of each run against held-out data, and the sliced W2
between cached and uncached samples (the change the hook causes).

    python benchmarks/cache_hooks.py            # GPU: the recorded numbers
    python benchmarks/cache_hooks.py --quick    # CPU smoke run, under a minute
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from _report import RESULTS_DIR, environment, header_lines, write_report
from diffusers.hooks import (
    FirstBlockCacheConfig,
    PyramidAttentionBroadcastConfig,
    TaylorSeerCacheConfig,
)

from difforge.core.diffusion.flow import FlowMatchingLoss
from difforge.core.diffusion.sampling import SamplerStep, make_scheduler, sample
from difforge.core.metrics import sliced_wasserstein
from difforge.core.nn.dit import DiTBackbone
from difforge.core.toy import fit_toy_model, gaussian_mixture


def hook_configs(steps: int, timestep_now: dict[str, float]) -> dict[str, object | None]:
    return {
        "none": None,
        "first_block_0.05": FirstBlockCacheConfig(threshold=0.05),
        "first_block_0.1": FirstBlockCacheConfig(threshold=0.1),
        "taylorseer_2": TaylorSeerCacheConfig(
            cache_interval=2, disable_cache_before_step=3, taylor_factors_dtype=torch.float32
        ),
        "taylorseer_3": TaylorSeerCacheConfig(
            cache_interval=3, disable_cache_before_step=3, taylor_factors_dtype=torch.float32
        ),
        "pab_2": PyramidAttentionBroadcastConfig(
            spatial_attention_block_skip_range=2,
            spatial_attention_timestep_skip_range=(100, 900),
            current_timestep_callback=lambda: timestep_now["t"],
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--preset", default="base")
    parser.add_argument("--train-steps", type=int, default=3000)
    parser.add_argument("--samples", type=int, default=16384)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()
    if args.quick:
        args.preset, args.train_steps, args.samples, args.steps, args.repeats = (
            "tiny",
            200,
            2000,
            20,
            1,
        )
    device = "cuda" if torch.cuda.is_available() and not args.quick else "cpu"
    torch.manual_seed(0)
    model = DiTBackbone.from_preset(args.preset, in_channels=2).to(device)
    start = time.perf_counter()
    final_loss = fit_toy_model(
        model,
        FlowMatchingLoss(make_scheduler("flow")),
        lambda gen: gaussian_mixture(1024, generator=gen),
        steps=args.train_steps,
        lr=1e-3,
        call=lambda x, t: model(x[:, None], t).sample[:, 0].float(),
        bf16=device == "cuda",
    )
    train_s = time.perf_counter() - start
    model.eval()
    held_out = gaussian_mixture(args.samples, generator=torch.Generator().manual_seed(123))
    scheduler = make_scheduler("flow", "dpmsolver++")
    timestep_now = {"t": 1000.0}

    def run_once() -> torch.Tensor:
        def remember(step: SamplerStep) -> None:  # the timestep of the next model call
            if step.next_t is not None:
                timestep_now["t"] = float(step.next_t)

        out = sample(
            lambda x, t: model(x[:, None], t).sample[:, 0],
            scheduler,
            (args.samples, 2),
            num_inference_steps=args.steps,
            generator=torch.Generator().manual_seed(1),
            device=device,
            cache_model=model,
            callback=remember,
        )
        return out.float().cpu()

    rows, reference = [], None
    for name, config in hook_configs(args.steps, timestep_now).items():
        if config is not None:
            model.enable_cache(config)
        run_once()  # warm-up (kernels, cache state)
        if device == "cuda":
            torch.cuda.synchronize()
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            samples = run_once()
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        if config is not None:
            model.disable_cache()
        seconds = min(times)
        if reference is None:
            reference, base_seconds = samples, seconds
        rows.append(
            {
                "hook": name,
                "seconds": round(seconds, 4),
                "speedup": round(base_seconds / seconds, 3),
                "sw2_to_held_out": round(sliced_wasserstein(samples, held_out), 4),
                "sw2_to_uncached": round(sliced_wasserstein(samples, reference), 4),
            }
        )
        print(rows[-1], flush=True)

    report = {
        "benchmark": "cache_hooks",
        **environment(device),
        "preset": args.preset,
        "params_m": round(model.num_parameters() / 1e6, 2),
        "train_steps": args.train_steps,
        "train_seconds": round(train_s, 1),
        "final_loss": round(final_loss, 4),
        "samples": args.samples,
        "sampler": f"DPM-Solver++ (flow), {args.steps} steps",
        "results": rows,
    }
    lines = [
        "# diffusers cache hooks on the core DiT (mixture of 8 Gaussians, flow matching)",
        "",
        *header_lines(report),
        f"- model: preset `{args.preset}` ({report['params_m']} M params), {args.train_steps} training steps; "
        f"{args.samples} samples per run, {report['sampler']}; best of {args.repeats} runs",
        "- sw2_to_uncached: sliced W2 between the hooked and the uncached samples from the same noise",
        "",
        "| hook | seconds | speed-up | SW2 to held-out | SW2 to uncached |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r['hook']} | {r['seconds']:.3f} | {r['speedup']:.2f}x | {r['sw2_to_held_out']:.4f} | {r['sw2_to_uncached']:.4f} |"
        for r in rows
    ]
    stem = "cache_hooks_quick" if args.quick else "cache_hooks"
    write_report(args.out_dir, stem, report, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
