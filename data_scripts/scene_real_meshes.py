"""Real meshes from Debian packages through difforge-scene's users'-mesh path.

Fetches (``apt-get download`` + ``dpkg -x``, nothing installed, nothing committed):

* assimp-testmodels 5.2.5~ds0-1: the OBJ and PLY test models (BSD-3),
* sweethome3d 7.0.2+dfsg-3: the 93 furniture OBJs of its default catalogue with their real sizes
  (GPL-2+, eTeks).

Then, for every model: load it the way ``difforge-scene convert`` does (repair, or a one-line
refusal for meshes that cannot be closed), put each closed model in one 3.2 m block, compute its SDF
grid, mesh it back with marching cubes and measure the round trip against the original (F-score at
2 and 5 cm, normal consistency, Chamfer). Finally a room is furnished with closed catalogue models
(one per class that has one), written as an OBJ and converted into overlapping blocks like a user's
room, meshed in one pass and rendered.

    .venv/bin/python data_scripts/scene_real_meshes.py [--work runs/scene_real_meshes]

Writes summary.json and summary.md (per-model table), room.obj, room_layout.json,
room_blocks/ (dataset folder), room_blocks.glb and room_blocks.png under --work.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import trimesh

from difforge.core.errors import UserError
from difforge.core.io import atomic_open, write_json
from difforge.scene.data.blocks import sdf_grid
from difforge.scene.data.geometry import BLOCK_SIZE, block_origin
from difforge.scene.data.layout import Layout, LayoutBox, write_layout
from difforge.scene.data.meshes import MeshSDF, load_mesh, write_mesh_dataset
from difforge.scene.evaluate import mesh_reconstruction_metrics
from difforge.scene.meshing import colour_by_layout, export_mesh, mesh_blocks, mesh_from_sdf
from difforge.scene.render import render_png

PACKAGES = {"assimp-testmodels": "5.2.5~ds0-1", "sweethome3d": "7.0.2+dfsg-3"}
CATALOGUE = "com/eteks/sweethome3d/io/DefaultFurnitureCatalog.properties"
# Catalogue names -> our classes (first keyword that matches wins).
CLASS_KEYWORDS = (
    ("bed", ("bed ",)),
    ("sofa", ("sofa", "armchair")),
    ("stool", ("stool",)),
    ("chair", ("chair",)),
    ("cabinet", ("bookcase", "chest", "wardrobe", "cupboard", "bedside", "dresser", "tv unit")),
    ("table", ("table", "desk")),
    ("lighting", ("lamp", "light")),
)


def fetch(work: Path) -> Path:
    """Download and unpack the two packages once; returns the unpack root."""
    root = work / "pkgs"
    if (root / "usr/share/sweethome3d/sweethome3d.jar").exists():
        return root
    debs = work / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    for name, version in PACKAGES.items():
        subprocess.run(["apt-get", "download", f"{name}={version}"], cwd=debs, check=True)
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
    return root


def sweethome3d_catalogue(root: Path, work: Path) -> list[dict]:
    """Catalogue items with an OBJ model: name, our class (or None), size in metres, OBJ path."""
    jar = zipfile.ZipFile(root / "usr/share/sweethome3d/sweethome3d.jar")
    models = work / "sweethome3d"
    for member in jar.namelist():
        if member.startswith("com/eteks/sweethome3d/io/resources/") and member.endswith(
            (".obj", ".mtl")
        ):
            jar.extract(member, models)
    props: dict[str, str] = {}
    for line in jar.read(CATALOGUE).decode("latin-1").splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            props[key.strip()] = value.strip()
    items = []
    for key, model in props.items():
        if not key.startswith("model#") or not model.endswith(".obj"):
            continue
        n = key.split("#", 1)[1]
        name = props[f"name#{n}"]
        lowered = f"{name.lower()} "
        cls = next((c for c, words in CLASS_KEYWORDS if any(w in lowered for w in words)), None)
        rotation = props.get(f"modelRotation#{n}")
        items.append(
            {
                "name": name,
                "class": cls,
                "size_m": [float(props[f"{k}#{n}"]) / 100 for k in ("width", "height", "depth")],
                "rotation": [float(v) for v in rotation.split()] if rotation else None,
                "path": models / model.lstrip("/"),
            }
        )
    return items


def fit_to_size(mesh: trimesh.Trimesh, size: list[float], rotation: list[float] | None) -> None:
    """Sweet Home 3D's placement: optional model rotation, then scale each axis to the size."""
    if rotation:
        matrix = np.eye(4)
        matrix[:3, :3] = np.asarray(rotation).reshape(3, 3)
        mesh.apply_transform(matrix)
    mesh.apply_scale(np.asarray(size) / mesh.extents)
    mesh.apply_translation(-mesh.bounds[0])


def round_trip(mesh: trimesh.Trimesh, resolution: int) -> dict[str, float]:
    """Centre the model on the floor of one block, SDF -> marching cubes, compare with the model."""
    placed = mesh.copy()
    placed.apply_translation(
        [
            BLOCK_SIZE / 2 - placed.centroid[0],
            -placed.bounds[0][1],
            BLOCK_SIZE / 2 - placed.centroid[2],
        ]
    )
    origin = block_origin(0.0, 0.0)
    grid = sdf_grid(MeshSDF(placed), origin, resolution)
    rebuilt = mesh_from_sdf(grid, origin, BLOCK_SIZE / resolution)
    if len(rebuilt.faces) == 0:
        return {"note": "thinner than the grid: nothing left after marching cubes"}
    return mesh_reconstruction_metrics(rebuilt, placed)


def furnished_room(
    items: list[dict], loaded: dict[str, trimesh.Trimesh]
) -> tuple[trimesh.Trimesh, Layout]:
    """A 5.15 m room shell with one closed catalogue model per class placed along the walls."""
    w = 5.15
    parts = [
        trimesh.creation.box((w + 0.3, 0.1, w + 0.3)).apply_translation((w / 2, -0.05, w / 2)),
        trimesh.creation.box((w + 0.3, 2.7, 0.15)).apply_translation((w / 2, 1.35, -0.075)),
        trimesh.creation.box((0.15, 2.7, w)).apply_translation((-0.075, 1.35, w / 2)),
    ]
    boxes = [LayoutBox("floor", (-0.15, -0.1, -0.15), (w + 0.15, 0.0, w + 0.15))]
    boxes += [LayoutBox("wall", (-0.15, -0.1, -0.15), (w + 0.15, 2.6, 0.0))]
    boxes += [LayoutBox("wall", (-0.15, -0.1, 0.0), (0.0, 2.6, w))]
    spots = iter(
        [(0.3, 0.05), (2.6, 0.05), (0.05, 2.6), (0.05, 4.0), (2.2, 2.2), (3.6, 3.6), (4.2, 0.6)]
    )
    used = set()
    for item in items:
        cls = item["class"]
        if cls is None or cls in used or item["name"] not in loaded:
            continue
        spot = next(spots, None)
        if spot is None:
            break
        mesh = loaded[item["name"]].copy()
        mesh.apply_translation([spot[0], 0.0, spot[1]])
        parts.append(mesh)
        lo, hi = mesh.bounds
        boxes.append(LayoutBox(cls, tuple(lo.tolist()), tuple(hi.tolist())))
        used.add(cls)
    room = trimesh.util.concatenate(parts)
    lo, hi = room.bounds
    return room, Layout(tuple(boxes), (float(lo[0]), float(lo[2])), (float(hi[0]), float(hi[2])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("runs/scene_real_meshes"))
    parser.add_argument("--resolution", type=int, default=64)
    args = parser.parse_args()
    work = args.work
    root = fetch(work)
    rows = []
    models = root / "usr/share/assimp/models"
    for path in sorted([*models.glob("OBJ/*.obj"), *models.glob("PLY/*.ply")]):
        rows.append(_try_model("assimp-testmodels", path.name, path, None, None, args.resolution))
    items = sweethome3d_catalogue(root, work)
    loaded: dict[str, trimesh.Trimesh] = {}
    for item in items:
        row = _try_model("sweethome3d", item["name"], item["path"], item, loaded, args.resolution)
        row["class"] = item["class"]
        rows.append(row)
    room, layout = furnished_room(items, loaded)
    room_obj = work / "room.obj"
    with atomic_open(room_obj, "w", encoding="utf-8") as fh:
        fh.write(trimesh.exchange.obj.export_obj(room, include_color=False, include_texture=False))
    # The room file is in the frame load_mesh produces (x, z >= 0 after placement; floor slab
    # bottom at y = -0.1), so the layout needs no shift.
    placed_lo = room.bounds[0]
    layout = Layout(
        tuple(b.shifted(-placed_lo[0], -placed_lo[2]) for b in layout.boxes),
        (0.0, 0.0),
        (float(room.extents[0]), float(room.extents[2])),
    )
    write_layout(work / "room_layout.json", layout)
    out_blocks = work / "room_blocks"
    if out_blocks.exists():
        for f in out_blocks.iterdir():
            f.unlink()
        out_blocks.rmdir()
    blocks = write_mesh_dataset(room_obj, out_blocks, resolution=args.resolution, layout=layout)
    scene = mesh_blocks(blocks)
    colour_by_layout(scene, layout)
    export_mesh(scene, work / "room_blocks.glb")
    render_png(scene, work / "room_blocks.png")
    ok = [r for r in rows if r["status"] == "ok"]
    summary = {
        "packages": PACKAGES,
        "resolution": args.resolution,
        "models": len(rows),
        "closed": len(ok),
        "refused": len(rows) - len(ok),
        "mean_round_trip": {
            k: float(np.mean([r["round_trip"][k] for r in ok if k in r["round_trip"]]))
            for k in ("CD", "F@2cm", "F@5cm", "NC")
        },
        "room": {
            "blocks": len(blocks),
            "faces": len(scene.faces),
            "watertight": bool(scene.is_watertight),
        },
        "rows": rows,
    }
    write_json(work / "summary.json", summary)
    lines = [
        "| source | model | class | status | F@2cm | F@5cm | NC |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rt = r.get("round_trip", {})
        lines.append(
            f"| {r['source']} | {r['model']} | {r.get('class') or ''} | {r['status']} | "
            + " | ".join(
                f"{rt[k]:.1f}" if k in rt and k != "NC" else (f"{rt[k]:.3f}" if k in rt else "")
                for k in ("F@2cm", "F@5cm", "NC")
            )
            + " |"
        )
    with atomic_open(work / "summary.md", "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=1))


def _try_model(
    source: str,
    name: str,
    path: Path,
    item: dict | None,
    loaded: dict[str, trimesh.Trimesh] | None,
    resolution: int,
) -> dict:
    row: dict = {"source": source, "model": name}
    try:
        mesh = load_mesh(path, place_on_floor=False)
    except UserError as exc:
        row["status"] = f"refused: {str(exc).split(': ', 1)[-1]}"
        return row
    if item is not None and loaded is not None:
        fit_to_size(mesh, item["size_m"], item["rotation"])
        loaded[name] = mesh
    else:
        # Test models come in arbitrary units: scale the largest side to 1.5 m.
        mesh.apply_scale(1.5 / mesh.extents.max())
    row["status"] = "ok"
    row["faces"] = len(mesh.faces)
    row["round_trip"] = round_trip(mesh, resolution)
    return row


if __name__ == "__main__":
    main()
