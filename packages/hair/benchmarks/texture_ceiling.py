"""The ceiling the diffusion model can reach: held-out grooms through codec -> scalp texture ->
decoding, with no diffusion (the exact texture of the ground truth), scored by the harness.

Usage: python packages/hair/benchmarks/texture_ceiling.py --codec CODEC_OR_MODEL_DIR
       [--resolution 64] [--n 14] [--workers 1] [--out FILE.json]
Prints the summary table row; the gap between this row and the model's is the diffusion model's
share of the error, the gap between this row and 100 is the representation's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from difforge.core.io import write_json
from difforge.core.pretrained import load_component
from difforge.hair.codec import StrandCodec, strands_to_local
from difforge.hair.data.dataset import SampleConfig, held_out_seeds, make_sample
from difforge.hair.data.groom import density_map
from difforge.hair.evaluate import EvalConfig, evaluate_generator, results_table
from difforge.hair.model import scalp_texture
from difforge.hair.sample import decode_texture
from difforge.hair.train import codec_folder


class TextureRoundTrip:
    """Reconstructor that ignores the picture's pixels: it looks up the held-out style the picture
    belongs to and decodes the exact scalp texture of its ground-truth groom."""

    def __init__(self, codec: StrandCodec, resolution: int, n: int, config: SampleConfig) -> None:
        self.codec = codec.eval()
        self.resolution, self.n_strands = resolution, config.n_strands
        self.samples = {
            sample.render.rgb.tobytes(): sample
            for sample in (make_sample(seed, config) for seed in held_out_seeds(n))
        }

    def __call__(self, image: np.ndarray):
        sample = self.samples[image.tobytes()]
        groom = sample.groom
        with torch.no_grad():
            local = torch.from_numpy(strands_to_local(groom.points, groom.root_uv))
            latents = self.codec.encode(local)[0].numpy()
        texture = scalp_texture(
            latents, groom.root_uv, density_map(sample.style, 128), self.resolution
        )
        return decode_texture(
            self.codec, torch.from_numpy(texture), 0, root_candidates=self.n_strands
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codec", type=Path, required=True)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--n", type=int, default=14)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--eval-points", type=int, default=100_000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    codec = load_component(StrandCodec, codec_folder(args.codec))
    config = EvalConfig(
        sample=SampleConfig(n_points=codec.config.n_points), n_eval_points=args.eval_points
    )
    reconstruct = TextureRoundTrip(codec, args.resolution, args.n, config.sample)
    report = evaluate_generator(reconstruct, args.n, config, args.workers)
    name = f"texture_round_trip_{args.resolution}"
    if args.out:
        write_json(args.out, {name: report})
    print(results_table({name: report}), end="")


if __name__ == "__main__":
    main()
