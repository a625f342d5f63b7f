"""Block-diffusion sampler benchmarks: the exact KV cache, and threshold vs fixed-count commits.

1. KV cache vs recomputing the whole prefix at every step (``sample_block_diffusion`` with
   ``use_cache`` True vs False): tokens/s at sequence length 256, block 16, one token per
   step (16 steps per block), on a DiT with random weights (speed only; the two paths must also give
   the same tokens, which is reported).
2. Confidence-threshold commits (Fast-dLLM: every masked token above the threshold, at least one)
   vs a fixed count per step, on the Markov-chain task of ``difforge.core.toy``: a DiT is trained
   here with ``BlockDiffusionLoss`` (block 8), then each rule samples at temperature 1 and is scored
   by model calls, tokens/s, legal-transition rate and transition JSD (natural log) against the
   chain; a fresh sample of the chain itself gives the JSD floor.

    python benchmarks/block_sampler.py                 # CUDA if available, else CPU (slow)
    python benchmarks/block_sampler.py --quick         # small, CPU, a few minutes
    python benchmarks/block_sampler.py --device cpu

Writes ``block_sampler[_quick].json`` and ``.md`` (card, date, command) to ``--out-dir``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from _report import RESULTS_DIR, environment, header_lines, write_report

from difforge.core.cli import resolve_device
from difforge.core.diffusion.block import BlockDiffusionLoss, sample_block_diffusion
from difforge.core.diffusion.sampling import SamplerStep
from difforge.core.nn.dit import DiTBackbone
from difforge.core.timing import synchronize, timed
from difforge.core.toy import MarkovChain, fit_toy_model, legal_transition_rate, transition_jsd

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


class CallCounter:
    """Counts model calls (NFE) of a sampler run."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model, self.calls = model, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.model(*args, **kwargs)


def random_model(args: argparse.Namespace, device: torch.device) -> DiTBackbone:
    torch.manual_seed(0)
    model = DiTBackbone.from_preset(
        args.preset, vocab_size=args.vocab + 1, use_timestep=False, max_seq_len=args.seq_len
    )
    with torch.no_grad():  # adaLN-Zero makes a fresh DiT the identity: perturb it
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.to(device=device, dtype=DTYPES[args.dtype]).eval()


def bench_kv_cache(args: argparse.Namespace, device: torch.device) -> dict:
    model = random_model(args, device)
    mask = args.vocab
    options = {
        "block_size": args.block_size,
        "mask_token_id": mask,
        "steps_per_block": args.block_size,
    }
    rows = []
    for batch_size in args.batch_size:
        canvas = torch.full((batch_size, args.seq_len), mask, device=device)
        row, outputs = {"batch_size": batch_size}, {}
        for name, use_cache in [("cached", True), ("uncached", False)]:
            counter = CallCounter(model)

            def run(use_cache=use_cache, counter=counter, canvas=canvas):
                counter.calls = 0
                return sample_block_diffusion(counter, canvas, use_cache=use_cache, **options)

            times, outputs[name] = timed(run, device, args.repeats)
            seconds = statistics.median(times)
            row[f"{name}_seconds"] = round(seconds, 4)
            row[f"{name}_tokens_per_s"] = round(batch_size * args.seq_len / seconds, 1)
            row[f"{name}_model_calls"] = counter.calls
        row["speedup"] = round(row["uncached_seconds"] / row["cached_seconds"], 2)
        same = (outputs["cached"] == outputs["uncached"]).float().mean().item()
        row["token_agreement"] = round(same, 6)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return {
        "preset": args.preset,
        "dtype": args.dtype,
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "vocab": args.vocab,
        "seq_len": args.seq_len,
        "block_size": args.block_size,
        "steps_per_block": args.block_size,
        "repeats": args.repeats,
        "results": rows,
    }


def train_markov_model(args: argparse.Namespace, device: torch.device, chain: MarkovChain):
    num_states = chain.num_states
    data = chain.sample(args.markov_train_sequences, args.markov_len, seed=1).to(device)
    torch.manual_seed(0)
    model = DiTBackbone.from_preset(
        args.markov_preset,
        vocab_size=num_states + 1,
        use_timestep=False,
        max_seq_len=args.markov_len,
    ).to(device)
    loss_fn = BlockDiffusionLoss(num_states, block_size=args.markov_block, weighting="effective")
    start = time.perf_counter()
    loss = fit_toy_model(
        model,
        loss_fn,
        lambda gen: data[
            torch.randint(0, len(data), (args.markov_batch,), generator=gen, device=device)
        ],
        steps=args.markov_steps,
        lr=args.markov_lr,
    )
    synchronize(device)
    info = {
        "train_seconds": round(time.perf_counter() - start, 1),
        "final_loss": round(loss, 4),
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
    }
    return model.eval(), info


def bench_commit_rules(args: argparse.Namespace, device: torch.device) -> dict:
    chain = MarkovChain.random_sparse(
        args.markov_states, args.markov_degree, seed=0, concentration=args.markov_concentration
    )
    model, train_info = train_markov_model(args, device, chain)
    print(json.dumps(train_info), flush=True)
    mask = chain.num_states
    block = args.markov_block
    canvas = torch.full((args.markov_samples, args.markov_len), mask, device=device)
    rules = [
        (f"fixed {block // steps}/step", {"steps_per_block": steps})
        for steps in (block, block // 2, block // 4)
    ]
    rules += [(f"threshold {tau}", {"threshold": tau}) for tau in args.thresholds]
    rows = []
    num_blocks = args.markov_len // block
    for name, options in rules:
        counter = CallCounter(model)
        # A batch runs until its slowest row is done; a row's own step count is what decoding it
        # alone (or with per-row scheduling) would cost.
        row_steps = torch.zeros(args.markov_samples, device=device)

        def count_row_steps(step: SamplerStep, row_steps=row_steps) -> None:
            row_steps.add_(step.committed.any(1))

        def run(options=options, counter=counter, row_steps=row_steps):
            counter.calls = 0
            row_steps.zero_()
            return sample_block_diffusion(
                counter,
                canvas,
                block_size=block,
                mask_token_id=mask,
                temperature=1.0,
                generator=torch.Generator(device=device).manual_seed(0),
                callback=count_row_steps,
                **options,
            )

        times, out = timed(run, device, args.repeats)
        seconds = statistics.median(times)
        rows.append(
            {
                "rule": name,
                "model_calls": counter.calls,
                "calls_per_block": round(counter.calls / num_blocks, 2),
                "row_steps_per_block": round(row_steps.mean().item() / num_blocks, 2),
                "seconds": round(seconds, 4),
                "tokens_per_s": round(out.numel() / seconds, 1),
                "legal_rate": round(legal_transition_rate(out, chain.allowed), 5),
                "jsd": round(transition_jsd(out, chain), 5),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    reference = chain.sample(args.markov_samples, args.markov_len, seed=2)
    return {
        "states": chain.num_states,
        "out_degree": args.markov_degree,
        "concentration": args.markov_concentration,
        "seq_len": args.markov_len,
        "block_size": block,
        "samples": args.markov_samples,
        "preset": args.markov_preset,
        "train_steps": args.markov_steps,
        "train_batch": args.markov_batch,
        **train_info,
        "jsd_floor_chain_sample": round(transition_jsd(reference, chain), 5),
        "results": rows,
    }


def markdown(report: dict) -> str:
    kv, cr = report["kv_cache"], report["commit_rules"]
    lines = [
        "# Block-diffusion sampler",
        "",
        *header_lines(report),
        "",
        "## 1. Exact KV cache vs recomputing the prefix",
        "",
        f"DiT preset `{kv['preset']}` ({kv['params_m']} M params, random weights, {kv['dtype']}), "
        f"vocab {kv['vocab']}, {kv['seq_len']} tokens, block {kv['block_size']}, "
        f"{kv['steps_per_block']} steps per block (one token per step, "
        f"{kv['results'][0]['cached_model_calls']} model calls either way), median of "
        f"{kv['repeats']} runs. 'Same tokens' is the share of positions where both paths agree.",
        "",
        "| batch | KV cache tokens/s | recompute tokens/s | speed-up | same tokens |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in kv["results"]:
        lines.append(
            f"| {row['batch_size']} | {row['cached_tokens_per_s']:.0f} "
            f"| {row['uncached_tokens_per_s']:.0f} | **{row['speedup']:.2f}x** "
            f"| {row['token_agreement'] * 100:.2f} % |"
        )
    lines += [
        "",
        "## 2. Confidence-threshold vs fixed-count commits (Markov task)",
        "",
        f"Sparse random Markov chain, {cr['states']} states, {cr['out_degree']} successors each "
        f"(Dirichlet concentration {cr['concentration']}); DiT preset `{cr['preset']}` "
        f"({cr['params_m']} M params) trained {cr['train_steps']} steps (batch {cr['train_batch']}, "
        f"{cr['train_seconds']} s, final loss {cr['final_loss']}) with BlockDiffusionLoss "
        f"(effective mask-ratio weighting); {cr['samples']} samples of {cr['seq_len']} tokens, "
        f"block {cr['block_size']}, temperature 1, no constraint. JSD floor (a fresh chain sample "
        f"of the same size): {cr['jsd_floor_chain_sample']:.4f}. Steps per sequence count the "
        "denoising steps in which a sequence committed tokens (its cost decoded alone); a batch "
        "makes as many model calls as its slowest sequence needs.",
        "",
        "| commit rule | steps per block (per sequence) | model calls per block (batch) "
        "| tokens/s (batch) | legal transitions | transition JSD |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in cr["results"]:
        lines.append(
            f"| {row['rule']} | {row['row_steps_per_block']:.2f} | {row['calls_per_block']:.2f} "
            f"| {row['tokens_per_s']:.0f} "
            f"| {row['legal_rate'] * 100:.2f} % | {row['jsd']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small settings for a CPU check")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--preset", default="base", help="DiT preset of the KV-cache benchmark")
    parser.add_argument("--vocab", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--block-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--markov-preset", default="small")
    parser.add_argument("--markov-states", type=int, default=50)
    parser.add_argument("--markov-degree", type=int, default=3)
    parser.add_argument(
        "--markov-concentration",
        type=float,
        default=0.3,
        help="Dirichlet concentration of successor probabilities (small = nearly deterministic)",
    )
    parser.add_argument("--markov-len", type=int, default=64)
    parser.add_argument("--markov-block", type=int, default=8)
    parser.add_argument("--markov-steps", type=int, default=3000)
    parser.add_argument("--markov-batch", type=int, default=256)
    parser.add_argument("--markov-lr", type=float, default=1e-3)
    parser.add_argument("--markov-train-sequences", type=int, default=50000)
    parser.add_argument("--markov-samples", type=int, default=2048)
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.9, 0.7, 0.5])
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()
    if args.quick:
        args.preset, args.batch_size, args.repeats = "tiny", [4], 1
        args.markov_preset, args.markov_len, args.markov_steps = "tiny", 32, 300
        args.markov_batch, args.markov_lr, args.markov_train_sequences = 32, 5e-3, 4096
        args.markov_samples = 256
    device = resolve_device(args.device)
    if device.type == "cpu":
        # Small models on a shared CPU: one thread avoids OpenMP spinning against other processes.
        torch.set_num_threads(1)

    kv_cache = bench_kv_cache(args, device)
    commit_rules = bench_commit_rules(args, device)
    report = {
        "benchmark": "block_sampler",
        **environment(device.type),
        "kv_cache": kv_cache,
        "commit_rules": commit_rules,
    }
    stem = "block_sampler_quick" if args.quick else "block_sampler"
    write_report(args.out_dir, stem, report, markdown(report))


if __name__ == "__main__":
    main()
