"""Build a procedural hair dataset (difforge-hair): N styles from consecutive seeds (or only
those of the ``--families`` given).

Usage: python data_scripts/hair_dataset.py --n 2000 --seed 0 --out data/hair [--strands 10000]
       [--points 64] [--image-size 128] [--families curly,coily]

Same as `difforge-hair dataset`. Data is regenerated from seeds, never committed: each style
folder holds strands.npz, image.png, mask.png, density.png and params.json (see the package
README). Seeds from 1,000,000 up are held out for evaluation and refused here.
"""

from __future__ import annotations

import sys

from difforge.hair.cli import main

if __name__ == "__main__":
    sys.exit(main(["dataset", *sys.argv[1:]]))
