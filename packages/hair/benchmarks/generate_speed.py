"""Time picture -> groom generation of a model (texture sampling + batched decoding).

Usage: python packages/hair/benchmarks/generate_speed.py --model MODEL_DIR [--device cuda]
       [--target 10000] [--init-preset default]
The picture is the first held-out style's; the groom has exactly ``--target`` strands. ``--init-preset NAME`` times an untrained model of that size preset
instead of a trained one (the cost does not depend on the weights). Prints one JSON object;
``--md FILE`` appends a Markdown line to FILE.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from difforge.core.cli import load_preset, resolve_device
from difforge.core.config import to_dict
from difforge.hair import CODEC_PRESETS, DIFFUSION_PRESETS
from difforge.hair.codec import StrandCodec
from difforge.hair.data.dataset import SampleConfig, held_out_seeds, make_sample
from difforge.hair.model import HairModel, ScalpDiffusion
from difforge.hair.run_config import CodecRunConfig, DiffusionRunConfig
from difforge.hair.sample import HairGenerator, time_generation


def untrained_model(preset: str) -> HairModel:
    codec_config = load_preset(CodecRunConfig, CODEC_PRESETS, preset, [])
    diffusion_config = load_preset(DiffusionRunConfig, DIFFUSION_PRESETS, preset, [])
    codec = StrandCodec(**to_dict(codec_config.model))
    diffusion = ScalpDiffusion(
        texture_channels=codec_config.model.latent_dim + 1,
        image_size=diffusion_config.data.image_size,
        **to_dict(diffusion_config.model),
    )
    with torch.no_grad():
        diffusion.channel_mean[-1] = 0.6  # density over the scalp: the decode keeps most roots
    return HairModel(codec.eval(), diffusion.eval(), diffusion_config.sampling)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder (or default)")
    parser.add_argument("--init-preset", help="time an untrained model of this size preset")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--target", type=int, default=10_000, help="strands per groom")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--md", type=Path, help="append a Markdown line to this file")
    args = parser.parse_args()
    if (args.model is None) == (args.init_preset is None):
        parser.error("give exactly one of --model and --init-preset")
    model = HairModel.load(args.model) if args.model else untrained_model(args.init_preset)
    device = resolve_device(args.device)
    generator = HairGenerator(model, device)
    size = generator.image_size
    image = make_sample(held_out_seeds(1)[0], SampleConfig(image_size=size)).render.rgb
    timing = time_generation(generator, image, args.target, args.repeats)
    result = {
        **timing,
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "steps": generator.sampling.steps,
        "guidance_scale": generator.sampling.guidance_scale,
        "model": args.model or f"untrained {args.init_preset} preset",
    }
    print(json.dumps(result))
    if args.md:
        with open(args.md, "a", encoding="utf-8") as fh:
            fh.write(
                f"\n{result['strands']}-strand groom on {result['device']} ({device.type}): "
                f"{result['seconds_median']:.2f} s (median of {args.repeats}, "
                f"{result['steps']} sampling steps, guidance {result['guidance_scale']})\n"
            )


if __name__ == "__main__":
    main()
