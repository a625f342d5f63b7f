"""Collect the reports of a scene recipe run (``difforge-scene recipe ... --out RUN``) into
results.json and results.md: every stage's seconds and device, the fits', the VAE's and the
model's reports and the evaluation, as tables naming the card and the date.

Whatever stages are done is collected, so a run cut short still reports its finished stages::

    python3 packages/scene/scripts/gpu_results.py --run RUN --out OUT
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path
from typing import Any

from difforge.core.io import atomic_open, write_json

# Report key -> the file of a recipe run it comes from.
REPORTS = {
    "fit_stage1": "2-fit/stage1/fit.json",
    "fit_stage2": "2-fit/stage2/fit.json",
    "vae": "3-vae/vae/metrics.json",
    "model": "4-diffusion/model/config.json",
    "evaluation": "5-evaluate/eval.json",
}


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


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


def collect(run: Path) -> dict[str, Any]:
    stages = []
    for folder in sorted(run.glob("[0-9]-*"), key=lambda p: int(p.name.split("-")[0])):
        record = _read(folder / "stage.json")
        if record is not None and (folder / ".done").is_file():
            stages.append({"stage": folder.name.split("-", 1)[1], **record})
    recipe = _read(run / "recipe.json") or {}
    results: dict[str, Any] = {
        "card": next((s["device"] for s in stages if s["device"] != "cpu"), "CPU"),
        "date": datetime.date.today().isoformat(),
        "recipe": recipe.get("recipe"),
        "stages": stages,
    }
    for key, name in REPORTS.items():
        data = _read(run / name)
        if isinstance(data, dict):
            data.pop("history", None)
            results[key] = data
    return results


def markdown(results: dict[str, Any]) -> str:
    lines = [f"# difforge-scene recipe {results['recipe']}: {results['card']}, {results['date']}"]
    lines += ["", "| stage | seconds | device |", "|---|---|---|"]
    lines += [f"| {s['stage']} | {s['seconds']} | {s['device']} |" for s in results["stages"]]
    recon_rows = []
    for key, label in (("fit_stage1", "fit stage 1 (decoder + planes)"),
                       ("fit_stage2", "fit stage 2 (frozen decoder)")):  # fmt: skip
        fit = results.get(key)
        if fit:
            rep = next((v for k, v in fit.items() if k.startswith("reconstruction_first")), {})
            recon_rows.append((f"{label}, {fit['blocks']} blocks", rep))
    vae = results.get("vae")
    for name, what in (("raw_triplanes", "raw tri-planes"), ("vae", "latent tri-plane VAE")):
        rep = (vae or {}).get(f"held_out_reconstruction_{name}")
        if rep:
            n = vae.get("held_out_reconstruction_blocks")
            recon_rows.append((f"{what} of {n} held-out blocks", rep))
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
                  f"steps in {vae['seconds']:.0f} s (stopped by {vae['stopped_by']}), final "
                  f"{json.dumps(vae.get('final_logs'))}"]  # fmt: skip
    model = results.get("model")
    if model:
        run = model["training"]["diffusion"]
        lines += ["", f"latent diffusion: parameters {model['parameters']}, {run['steps']}/"
                  f"{run['planned_steps']} steps in {run['seconds']:.0f} s (stopped by "
                  f"{run['stopped_by']}) on {model['training']['examples_with_flips']} examples, "
                  f"final {json.dumps(run.get('final_logs'))}"]  # fmt: skip
    evaluation = results.get("evaluation")
    if evaluation:
        protocol = evaluation["protocol"]
        lines += ["", f"## Generation vs held-out blocks ({protocol['n_generated']} vs "
                  f"{protocol['n_reference']}, {protocol['points_per_block']} points per block)",
                  "", "| method | COV-CD ↑ | MMD-CD (cm²) ↓ | 1-NNA-CD (%) → 50 | F@5cm vs query | "
                  "furniture IoU | wall IoU | empty | s/block |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for name, m in evaluation["methods"].items():
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="the recipe run's folder")
    parser.add_argument("--out", type=Path, required=True, help="where results.json/.md go")
    args = parser.parse_args()
    results = collect(args.run)
    write_json(args.out / "results.json", results)
    with atomic_open(args.out / "results.md", "w", encoding="utf-8") as fh:
        fh.write(markdown(results))


if __name__ == "__main__":
    main()
