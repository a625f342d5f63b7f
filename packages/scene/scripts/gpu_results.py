"""Collect the reports of packages/scene/scripts/gpu_run.sh into results.json and results.md.

Run after every stage: whatever exists so far is written (partial results survive a time-out).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
from pathlib import Path
from typing import Any

from difforge.core.io import atomic_open, write_json


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _card() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name()
    except ImportError:
        pass
    return f"CPU ({platform.processor() or platform.machine()})"


SEAM_METRICS = (
    "sdf_disagreement_cm",
    "overlap_chamfer_cm2",
    "open_boundary_m",
    "open_boundary_blended_m",
)


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def collect(work: Path) -> dict[str, Any]:
    stages = []
    if (work / "stages.tsv").is_file():
        for line in (work / "stages.tsv").read_text().splitlines():
            name, rc, seconds = line.split("\t")
            stages.append({"stage": name, "exit": rc, "seconds": int(seconds)})
    results: dict[str, Any] = {
        "card": _card(),
        "date": datetime.date.today().isoformat(),
        "stages": stages,
    }
    for key, path in (
        ("fit_stage1", work / "fit1" / "fit.json"),
        ("fit_stage2", work / "fit2" / "fit.json"),
        ("vae", work / "vae" / "metrics.json"),
        ("ablation_vector_vae", work / "vae_vector" / "metrics.json"),
        ("model", work / "model" / "config.json"),
        ("evaluation", work / "eval.json"),
        ("ablation_raw_model", work / "raw" / "config.json"),
        ("ablation_raw_evaluation", work / "eval_raw.json"),
        ("ablation_vector_model", work / "vector" / "config.json"),
        ("ablation_vector_evaluation", work / "eval_vector.json"),
    ):
        data = _read(path)
        if data is not None:
            if isinstance(data, dict):
                data.pop("history", None)
            results[key] = data
    return results


def markdown(results: dict[str, Any]) -> str:
    lines = [f"# difforge-scene GPU run: {results['card']}, {results['date']}", ""]
    lines += ["| stage | exit | seconds |", "|---|---|---|"]
    lines += [f"| {s['stage']} | {s['exit']} | {s['seconds']} |" for s in results["stages"]]
    recon_rows = []
    for key, label in (("fit_stage1", "fit stage 1 (decoder + planes)"),
                       ("fit_stage2", "fit stage 2 (frozen decoder)")):  # fmt: skip
        fit = results.get(key)
        if fit:
            rep = next((v for k, v in fit.items() if k.startswith("reconstruction_first")), {})
            recon_rows.append((f"{label}, {fit['blocks']} blocks", rep))
    vae = results.get("vae")
    for key, label in (
        ("vae", "latent tri-plane VAE"),
        ("ablation_vector_vae", "latent vector VAE"),
    ):
        metrics = results.get(key) or {}
        for name in ("vae", "raw_triplanes"):
            rep = metrics.get(f"held_out_reconstruction_{name}")
            if rep and not (key != "vae" and name == "raw_triplanes"):
                what = f"{label} round trip" if name == "vae" else "raw tri-planes (same blocks)"
                n = metrics.get("held_out_reconstruction_blocks")
                recon_rows.append((f"{what}, {n} held-out, {metrics['steps']} steps", rep))
    if recon_rows:
        lines += ["", "## Reconstruction through the shared decoder (vs exact surface)", ""]
        lines += ["| what | F@2cm | F@5cm | NC | CD (cm²) | empty |", "|---|---|---|---|---|---|"]
        for label, rep in recon_rows:
            lines.append(
                f"| {label} | {_fmt(rep.get('F@2cm'))} | {_fmt(rep.get('F@5cm'))} | "
                f"{_fmt(rep.get('NC'), 3)} | {_fmt(rep.get('CD'))} | "
                f"{_fmt(rep.get('empty_reconstructions'))} |"
            )
    if vae:
        lines += ["", f"VAE: {vae['parameters']:,} parameters, latent {vae['latent_shape']}, "
                  f"compression {vae['compression']:.0f}x, {vae['steps']}/{vae['planned_steps']} "
                  f"steps in {vae['seconds']:.0f} s, final {json.dumps(vae.get('final_logs'))}"]  # fmt: skip
    for key, label in (
        ("model", "latent diffusion"),
        ("ablation_raw_model", "raw diffusion"),
        ("ablation_vector_model", "latent vector diffusion"),
    ):
        model = results.get(key)
        if model:
            run = model["training"]["diffusion"]
            lines += ["", f"{label}: parameters {model['parameters']}, {run['steps']}/"
                      f"{run['planned_steps']} steps in {run['seconds']:.0f} s on "
                      f"{model['training']['examples_with_flips']} examples, final "
                      f"{json.dumps(run.get('final_logs'))}"]  # fmt: skip
    methods: dict[str, Any] = {}
    for key in ("evaluation", "ablation_raw_evaluation", "ablation_vector_evaluation"):
        ev = results.get(key)
        if ev:
            methods.update(ev["methods"])
            protocol = ev["protocol"]
    if methods:
        lines += ["", f"## Generation vs held-out blocks ({protocol['n_generated']} vs "
                  f"{protocol['n_reference']}, {protocol['points_per_block']} points per block)",
                  "", "| method | COV-CD ↑ | MMD-CD (cm²) ↓ | 1-NNA-CD (%) → 50 | F@5cm vs query | "
                  "furniture IoU | wall IoU | empty | s/block |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for name, m in methods.items():
            d = m.get("distribution", {})
            r = m.get("reconstruction_vs_query", {})
            a = m.get("layout_adherence", {})
            lines.append(
                f"| {name} | {_fmt(d.get('COV'))} | {_fmt(d.get('MMD'))} | {_fmt(d.get('1-NNA'))} "
                f"| {_fmt(r.get('F@5cm'))} | {_fmt(a.get('furniture_IoU'))} | "
                f"{_fmt(a.get('wall_IoU'))} | {_fmt(m.get('empty_blocks'))} | "
                f"{_fmt(m.get('seconds_per_block'), 3)} |"
            )
    seams = (results.get("evaluation") or {}).get("seams")
    if seams and seams.get("pairs"):
        lines += ["", f"## Neighbouring blocks, with vs without overlap conditioning "
                  f"({seams['pairs']} pairs inside held-out rooms, 0.8 m overlap; mean / median "
                  "over the pairs finite for both)", "",
                  "| metric ↓ | with overlap conditioning | independent | pairs | conditioning "
                  "lower (% of pairs) |", "|---|---|---|---|---|"]  # fmt: skip
        for metric in SEAM_METRICS:
            summary = seams.get(metric, {})
            cells = [
                f"{_fmt(summary.get(name, {}).get('mean'), 2)} / "
                f"{_fmt(summary.get(name, {}).get('median'), 2)}"
                for name in ("with overlap conditioning", "independent")
            ]
            share = summary.get("with overlap conditioning lower (% of pairs)")
            lines.append(
                f"| {metric} | {' | '.join(cells)} | {_fmt(summary.get('pairs'))} | {_fmt(share)} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    results = collect(args.work)
    write_json(args.out / "results.json", results)
    with atomic_open(args.out / "results.md", "w", encoding="utf-8") as fh:
        fh.write(markdown(results))


if __name__ == "__main__":
    main()
