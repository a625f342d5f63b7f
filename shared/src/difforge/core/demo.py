"""The core's own demonstration: train tiny models on the toy tasks, sample, report the metrics.

Runs on CPU in well under a minute; each domain package adds its own demo section next to it.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from difforge.core.diffusion.block import BlockDiffusionLoss, sample_block_diffusion
from difforge.core.diffusion.flow import FlowMatchingLoss
from difforge.core.diffusion.sampling import make_scheduler, sample
from difforge.core.gallery import DemoSection
from difforge.core.io import atomic_open, atomic_path, write_json
from difforge.core.metrics import sliced_wasserstein
from difforge.core.nn.dit import DiTBackbone
from difforge.core.toy import (
    MarkovChain,
    fit_toy_model,
    gaussian_mixture,
    legal_transition_rate,
    transition_frequencies,
    transition_jsd,
)


def _scatter_png(path: Path, panels: dict[str, torch.Tensor]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4))
    for ax, (name, points) in zip(axes, panels.items()):
        ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.5)
        ax.set_title(name)
        ax.set_xlim(-3, 3)
        ax.set_ylim(-3, 3)
        ax.set_aspect("equal")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def _heatmaps_png(path: Path, panels: dict[str, torch.Tensor]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4))
    for ax, (name, matrix) in zip(axes, panels.items()):
        ax.imshow(matrix / matrix.sum(1, keepdim=True).clamp(min=1e-12), cmap="viridis")
        ax.set_title(name)
        ax.set_xlabel("next state")
        ax.set_ylabel("state")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def mixture_demo(out_dir: Path, steps: int = 1000, seed: int = 0) -> DemoSection:
    """Flow matching with the DiT on the 2-D mixture of 8 Gaussians, sampled with two schedulers."""
    torch.manual_seed(seed)
    model = DiTBackbone(in_channels=2, hidden_size=64, num_layers=2, num_heads=2)

    def denoiser(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return model(x[:, None], t).sample[:, 0]

    start = time.perf_counter()
    fit_toy_model(
        model,
        FlowMatchingLoss(make_scheduler("flow")),
        lambda gen: gaussian_mixture(256, generator=gen),
        steps=steps,
        lr=3e-3,
        call=denoiser,
        seed=seed,
    )
    train_s = time.perf_counter() - start
    held_out = gaussian_mixture(2000, generator=torch.Generator().manual_seed(seed + 123))
    panels, metrics = (
        {"held-out data": held_out},
        {"train_steps": steps, "train_seconds": round(train_s, 1)},
    )
    for sampler in ("flow_euler", "dpmsolver++"):
        points = sample(
            denoiser,
            make_scheduler("flow", sampler),
            (2000, 2),
            num_inference_steps=50 if sampler == "flow_euler" else 20,
            generator=torch.Generator().manual_seed(seed + 1),
        )
        panels[f"{sampler} samples"] = points
        metrics[f"sliced_w2_{sampler}"] = round(sliced_wasserstein(points, held_out), 4)
    metrics["sliced_w2_noise_baseline"] = round(
        sliced_wasserstein(torch.randn(2000, 2), held_out), 4
    )
    picture = out_dir / "mixture.png"
    _scatter_png(picture, panels)
    metrics_file = out_dir / "mixture_metrics.json"
    write_json(metrics_file, metrics)
    return DemoSection(
        title="core: flow matching on a mixture of 8 Gaussians",
        description=(
            "A tiny DiT trained for 1,000 steps on CPU, sampled with flow-matching Euler "
            "(50 steps) and DPM-Solver++ (20 steps). Sliced Wasserstein-2 against held-out data; "
            "lower is better, pure noise is the baseline."
        ),
        images=[picture],
        files=[metrics_file],
        metrics=metrics,
    )


def markov_demo(out_dir: Path, steps: int = 600, seed: int = 0) -> DemoSection:
    """BD3-LM block diffusion on a sparse Markov chain: KV-cached sampling, with and without the
    logits constraint that forbids illegal successors."""
    states, length, block = 50, 32, 8
    chain = MarkovChain.random_sparse(states, out_degree=3, seed=seed)
    data = chain.sample(4096, length, seed=seed + 1)
    torch.manual_seed(seed)
    model = DiTBackbone(
        vocab_size=states + 1,
        hidden_size=64,
        num_layers=2,
        num_heads=4,
        use_timestep=False,
        max_seq_len=length,
    )
    start = time.perf_counter()
    fit_toy_model(
        model,
        BlockDiffusionLoss(states, block, weighting="effective"),
        lambda gen: data[torch.randint(0, len(data), (32,), generator=gen)],
        steps=steps,
        lr=5e-3,
        seed=seed,
    )
    metrics: dict[str, float | int] = {
        "train_steps": steps,
        "train_seconds": round(time.perf_counter() - start, 1),
    }
    samples = {}
    for name, options in {
        "free": {},
        "constrained": {"constraint": chain.constraint(states, length)},
        "threshold_0.7": {"threshold": 0.7},
    }.items():
        tokens = sample_block_diffusion(
            model,
            torch.full((256, length), states),
            block_size=block,
            mask_token_id=states,
            steps_per_block=block,
            temperature=1.0,
            generator=torch.Generator().manual_seed(seed),
            **options,
        )
        samples[name] = tokens
        metrics[f"legal_transitions_{name}"] = round(
            legal_transition_rate(tokens, chain.allowed), 4
        )
        metrics[f"transition_jsd_{name}"] = round(transition_jsd(tokens, chain), 4)
    picture = out_dir / "markov_transitions.png"
    _heatmaps_png(
        picture,
        {
            "chain transition matrix": chain.transition,
            "generated (free)": transition_frequencies(samples["free"], states),
            "generated (constrained)": transition_frequencies(samples["constrained"], states),
        },
    )
    csv_file = out_dir / "markov_samples.csv"
    with atomic_open(csv_file, "w", encoding="utf-8") as fh:
        fh.write("sequence\n")
        fh.writelines(" ".join(map(str, row.tolist())) + "\n" for row in samples["constrained"])
    return DemoSection(
        title="core: block diffusion on a sparse Markov chain",
        description=(
            "A tiny DiT trained with the BD3-LM loss (block 8) on sequences of a random Markov chain "
            "with 3 successors per state (6 % of transitions legal), sampled block by block with the "
            "exact KV cache: free, with the logits constraint, and with Fast-dLLM threshold commits."
        ),
        images=[picture],
        files=[csv_file],
        metrics=metrics,
    )


def run(out_dir: str | Path) -> list[DemoSection]:
    """All core demo sections, written under ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread beats two (OpenMP spinning on busy CPUs)
    try:
        return [mixture_demo(out), markov_demo(out)]
    finally:
        torch.set_num_threads(threads)
