"""Gallery entries for ``make demo``: a few procedural styles rendered to PNG with their PLY.

Until the image-conditioned model ships, these are grooms straight from the procedural
generator (the training data), not model output.
"""

from __future__ import annotations

import os
from pathlib import Path

from difforge.core.gallery import DemoSection
from difforge.hair.data.groom import generate_groom
from difforge.hair.data.styles import sample_style
from difforge.hair.export import write_ply
from difforge.hair.render import Appearance, render_views, save_png, side_by_side

DEMO_STYLES = (
    ("long_straight", 1),
    ("curly", 2),
    ("coily", 3),
    ("bob", 4),
    ("side_part", 5),
    ("bangs", 6),
)


def run(
    out_dir: str | os.PathLike[str], n_strands: int = 6000, n_points: int = 48
) -> list[DemoSection]:
    """Render each demo style (front, three-quarter, side, back) to PNG and export its PLY."""
    out = Path(out_dir)
    images, files, metrics = [], [], {}
    for family, seed in DEMO_STYLES:
        style = sample_style(seed, family)
        groom = generate_groom(style, n_strands, n_points)
        views = render_views(
            groom.points,
            ("front", "three_quarter", "left", "back"),
            256,
            Appearance.from_style(style),
        )
        png, ply = out / f"hair_{family}.png", out / f"hair_{family}.ply"
        save_png(png, side_by_side([view.rgb for view in views.values()]))
        write_ply(ply, groom.points)
        images.append(png)
        files.append(ply)
        metrics[f"strands_{family}"] = groom.n_strands
    return [
        DemoSection(
            title="hair: procedural grooms (data generator; no trained model yet)",
            description=(
                "Six of the 14 procedural style families (front, three-quarter, side and back "
                "renders; PLY polylines to download). These are the training data of the "
                "image-to-strands model, which has not landed yet."
            ),
            images=images,
            files=files,
            metrics=metrics,
        )
    ]
