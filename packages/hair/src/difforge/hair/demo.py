"""Gallery entries for ``make demo``: a few procedural styles rendered to PNG with their PLY.

Until the image-conditioned model ships, these are grooms straight from the procedural
generator (the training data), not model output.
"""

from __future__ import annotations

import os
from pathlib import Path

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
) -> list[tuple[str, list[Path]]]:
    """Render each demo style (front, three-quarter, side, back) to PNG and export its PLY.

    Returns ``[(title, [png, ply]), ...]`` for the gallery.
    """
    out = Path(out_dir)
    entries = []
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
        title = f"Hair: procedural {family.replace('_', ' ')} groom ({groom.n_strands} strands, seed {seed})"
        entries.append((title, [png, ply]))
    return entries
