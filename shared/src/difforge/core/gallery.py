"""The demo gallery: each package's demo returns sections; one ``index.html`` shows them all."""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path

from difforge.core.io import atomic_open


@dataclass
class DemoSection:
    """One demo result: pictures to look at, files to download, headline numbers."""

    title: str
    description: str = ""
    images: list[Path] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    metrics: dict[str, float | int | str] = field(default_factory=dict)
    error: str | None = None


def _link(path: Path, root: Path) -> str:
    return html.escape(os.path.relpath(path, root))


def _format(value: float | int | str) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_gallery(
    out_dir: str | os.PathLike[str], sections: list[DemoSection], title: str = "difforge demo"
) -> Path:
    """Write ``out_dir/index.html`` linking every section's images and files (paths under out_dir)."""
    root = Path(out_dir)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
        "section{border-top:1px solid #ccc;padding:1em 0}img{max-width:380px;margin:4px;"
        "border:1px solid #ddd}table{border-collapse:collapse}td{padding:2px 10px;"
        "border-bottom:1px solid #eee}.error{color:#b00}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for section in sections:
        parts.append(f"<section><h2>{html.escape(section.title)}</h2>")
        if section.description:
            parts.append(f"<p>{html.escape(section.description)}</p>")
        if section.error:
            parts.append(f"<p class='error'>failed: {html.escape(section.error)}</p>")
        for image in section.images:
            link = _link(image, root)
            parts.append(f"<a href='{link}'><img src='{link}' alt='{html.escape(image.name)}'></a>")
        if section.metrics:
            rows = "".join(
                f"<tr><td>{html.escape(k)}</td><td>{html.escape(_format(v))}</td></tr>"
                for k, v in section.metrics.items()
            )
            parts.append(f"<table>{rows}</table>")
        if section.files:
            items = "".join(
                f"<li><a href='{_link(f, root)}' download>{html.escape(f.name)}</a></li>"
                for f in section.files
            )
            parts.append(f"<p>Downloads:</p><ul>{items}</ul>")
        parts.append("</section>")
    parts.append("</body></html>\n")
    index = root / "index.html"
    with atomic_open(index, "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts))
    return index
