"""Strand file formats: PLY and OBJ polylines, NumPy .npz, USD BasisCurves. Every write is atomic.

- PLY (binary little-endian or ASCII): a line set, ``element vertex`` (float x, y, z) and
  ``element edge`` (int vertex1, vertex2), each strand's K - 1 segments root to tip: the form
  Open3D's ``read_line_set`` and trimesh's ``load`` (a Path3D) read. Older files with one
  ``curve`` element (``vertex_indices`` list) per strand still read back.
- OBJ: ``v x y z`` lines and one ``l i1 i2 ... iK`` polyline element per strand (1-based).
- .npz: ``points`` (N, K, 3) float32 and ``root_uv`` (N, 2) float32.
- USD (.usda text, .usdc/.usd binary) via usd-core: one linear ``BasisCurves`` prim with widths
  tapering from root to tip and the stage's up axis and metres-per-unit set.

Strand points are metres in the head frame (+y up). ``up_axis="z"`` rotates +90 deg about x for
z-up tools (Blender, Unreal): (x, y, z) -> (x, -z, y), so the face looks toward -y.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np

from difforge.core.errors import UserError
from difforge.core.io import atomic_open, atomic_path

ROOT_WIDTH, TIP_WIDTH = 8e-5, 2e-5  # strand diameter (m) at root and tip, for USD widths


def _oriented(points: np.ndarray, up_axis: str) -> np.ndarray:
    points = np.asarray(points, dtype=np.float32)
    if points.ndim != 3 or points.shape[-1] != 3 or points.shape[1] < 2:
        raise UserError(f"strands must have shape (N, K>=2, 3), got {points.shape}")
    if up_axis == "y":
        return points
    if up_axis == "z":
        return np.stack([points[..., 0], -points[..., 2], points[..., 1]], axis=-1)
    raise UserError(f"up axis must be 'y' or 'z', got {up_axis!r}")


def write_ply(
    path: str | os.PathLike[str], points: np.ndarray, *, binary: bool = True, up_axis: str = "y"
) -> None:
    """Write strands (N, K, 3) as a PLY line set: ``element vertex`` (float x, y, z; strand by
    strand, root first) and ``element edge`` (int vertex1, vertex2), the K - 1 segments of each
    strand in order, root to tip. Open3D's ``read_line_set`` and trimesh read it as lines."""
    points = _oriented(points, up_axis)
    n_strands, n_points = points.shape[:2]
    header = (
        f"ply\nformat {'binary_little_endian' if binary else 'ascii'} 1.0\n"
        f"comment difforge-hair strands: {n_strands} x {n_points} points, metres, root first; "
        "edges chain each strand root to tip\n"
        f"element vertex {n_strands * n_points}\nproperty float x\nproperty float y\nproperty float z\n"
        f"element edge {n_strands * (n_points - 1)}\nproperty int vertex1\nproperty int vertex2\n"
        "end_header\n"
    )
    indices = np.arange(n_strands * n_points, dtype=np.int32).reshape(n_strands, n_points)
    edges = np.stack([indices[:, :-1], indices[:, 1:]], axis=-1).reshape(-1, 2)
    with atomic_open(path, "wb") as fh:
        fh.write(header.encode("ascii"))
        if binary:
            fh.write(points.astype("<f4").tobytes())
            fh.write(edges.astype("<i4").tobytes())
        else:
            body = io.StringIO()
            np.savetxt(body, points.reshape(-1, 3), fmt="%.7g")
            np.savetxt(body, edges, fmt="%d")
            fh.write(body.getvalue().encode("ascii"))


_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip


def read_ply(path: str | os.PathLike[str]) -> np.ndarray:
    """Read strands (N, K, 3) from a PLY line set: ``edge`` elements (vertex1, vertex2) chained
    root to tip, as :func:`write_ply` and Open3D's ``write_line_set`` write them, or the
    ``curve`` elements (one ``vertex_indices`` list per strand) of older difforge files. Binary
    (either byte order) or ASCII; all strands must have the same number of points."""
    elements = _read_ply_elements(path)
    if "vertex" not in elements or not {"x", "y", "z"} <= set(elements["vertex"].dtype.names):
        raise UserError(f"{path}: PLY has no vertex element with x, y, z")
    vertex = elements["vertex"]
    vertices = np.stack([vertex["x"], vertex["y"], vertex["z"]], axis=-1).astype(np.float32)
    edge, curve = elements.get("edge"), elements.get("curve")
    if edge is not None and {"vertex1", "vertex2"} <= set(edge.dtype.names):
        edges = np.stack([edge["vertex1"], edge["vertex2"]], axis=-1).astype(np.int64)
        index = _chain_edges(path, edges, len(vertices))
    elif curve is not None and "vertex_indices" in curve.dtype.names:
        index = curve["vertex_indices"].astype(np.int64).reshape(len(curve), -1)
    else:
        raise UserError(f"{path}: PLY has no strands (needs 'edge' or 'curve' elements)")
    if index.size and (index.min() < 0 or index.max() >= len(vertices)):
        raise UserError(f"{path}: PLY strand indexes a missing vertex")
    return vertices[index]


def _read_ply_elements(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Every element of a PLY file as a structured array. A list property must be its element's
    only property and have the same length in every row (it comes back as a fixed-size field)."""
    data = _read_bytes(path)
    end = data.find(b"end_header")
    body_start = data.find(b"\n", end) + 1
    if not data.startswith(b"ply") or end < 0 or body_start == 0:
        raise UserError(f"{path}: not a PLY file")
    fmt, specs = "", []  # specs: (name, count, [(property, type)] or (list, count type, type))
    for line in data[:end].decode("ascii", errors="replace").splitlines():
        words = line.split()
        if words[:1] == ["format"] and len(words) >= 2:
            fmt = words[1]
        elif words[:1] == ["element"] and len(words) == 3 and words[2].isdigit():
            specs.append((words[1], int(words[2]), []))
        elif words[:1] == ["property"] and specs:
            specs[-1][2].append(words[1:])
    order = {"binary_little_endian": "<", "binary_big_endian": ">", "ascii": ""}.get(fmt)
    if order is None:
        raise UserError(f"{path}: unsupported PLY format {fmt!r}")
    body, offset, elements = data[body_start:], 0, {}
    try:
        tokens = np.array(body.split(), dtype=np.float64) if order == "" else None
        for name, count, properties in specs:
            listed = [p for p in properties if p[:1] == ["list"]]
            if listed and (len(properties) != 1 or len(listed[0]) != 4):
                raise UserError(f"{path}: PLY element {name!r} mixes lists and other properties")
            types = [_PLY_TYPES[p[-2]] for p in properties] if not listed else []
            if listed:
                count_type, item_type = _PLY_TYPES[listed[0][1]], _PLY_TYPES[listed[0][2]]
                if order:
                    length = (
                        int(np.frombuffer(body, order + count_type, 1, offset)[0]) if count else 0
                    )
                else:
                    length = int(tokens[offset]) if count else 0
                dtype = np.dtype(
                    [("_count", order + count_type), (listed[0][3], order + item_type, (length,))]
                )
            else:
                dtype = np.dtype([(p[-1], order + t) for p, t in zip(properties, types)])
            if order:
                rows = np.frombuffer(body, dtype, count, offset)
                offset += count * dtype.itemsize
            else:
                width = (1 + length) if listed else len(types)
                flat = tokens[offset : offset + count * width].reshape(count, width)
                offset += count * width
                rows = np.zeros(count, dtype)
                if listed:
                    rows["_count"], rows[listed[0][3]] = flat[:, 0], flat[:, 1:]
                else:
                    for column, field in enumerate(dtype.names):
                        rows[field] = flat[:, column]
            if listed and np.any(rows["_count"] != length):
                raise UserError(f"{path}: PLY {name!r} lists differ in length")
            elements[name] = rows
    except (ValueError, IndexError) as exc:
        raise UserError(f"{path}: truncated or malformed PLY ({exc})") from None
    except KeyError as exc:
        raise UserError(f"{path}: unknown PLY property type {exc}") from None
    return elements


def _chain_edges(path: str | os.PathLike[str], edges: np.ndarray, n_vertices: int) -> np.ndarray:
    """Vertex indices (N, K) of the strands that ``edges`` (E, 2) chain, each from the vertex no
    edge ends at; strands ordered by their root's index."""
    if not len(edges):
        return np.zeros((0, 0), dtype=np.int64)
    if edges.min() < 0 or edges.max() >= n_vertices:
        raise UserError(f"{path}: PLY edge indexes a missing vertex")
    out_degree = np.bincount(edges[:, 0], minlength=n_vertices)
    in_degree = np.bincount(edges[:, 1], minlength=n_vertices)
    if out_degree.max() > 1 or in_degree.max() > 1:
        raise UserError(f"{path}: PLY edges branch; strands must be simple chains")
    following = np.full(n_vertices, -1, dtype=np.int64)
    following[edges[:, 0]] = edges[:, 1]
    chain = [np.flatnonzero((out_degree == 1) & (in_degree == 0))]
    while len(chain[0]) and (chain[-1] >= 0).all():
        chain.append(following[chain[-1]])
    index = np.stack(chain[:-1], axis=1) if len(chain[0]) else np.zeros((0, 0), np.int64)
    if (chain[-1] >= 0).any() or index.shape[0] * (index.shape[1] - 1) != len(edges):
        raise UserError(f"{path}: PLY edges form strands of different lengths or loops")
    return index


def write_obj(path: str | os.PathLike[str], points: np.ndarray, *, up_axis: str = "y") -> None:
    """Write strands (N, K, 3) as OBJ: ``v`` lines and one ``l`` polyline per strand."""
    points = _oriented(points, up_axis)
    n_strands, n_points = points.shape[:2]
    # One %-format over the whole array is several times faster than np.savetxt per row.
    vertex_text = ("v %.7g %.7g %.7g\n" * (n_strands * n_points)) % tuple(
        points.reshape(-1).tolist()
    )
    index = np.arange(1, n_strands * n_points + 1).reshape(n_strands, n_points)
    line_text = (("l" + " %d" * n_points + "\n") * n_strands) % tuple(index.reshape(-1).tolist())
    with atomic_open(path, "w", encoding="ascii") as fh:
        fh.write(f"# difforge-hair: {n_strands} strands x {n_points} points, metres, root first\n")
        fh.write(vertex_text)
        fh.write(line_text)


def read_obj(path: str | os.PathLike[str]) -> np.ndarray:
    """Read OBJ polylines (``v`` + ``l`` records, equal lengths) back to strands (N, K, 3)."""
    vertices, lines = [], []
    for raw in _read_bytes(path).decode("ascii", errors="replace").splitlines():
        parts = raw.split()
        if not parts:
            continue
        if parts[0] == "v":
            vertices.append([float(x) for x in parts[1:4]])
        elif parts[0] == "l":
            lines.append([int(x.split("/")[0]) - 1 for x in parts[1:]])
    if not lines or len({len(line) for line in lines}) != 1:
        raise UserError(f"{path}: OBJ has no polylines, or they differ in length")
    vertex_array, index = np.asarray(vertices, dtype=np.float32), np.asarray(lines)
    if index.max() >= len(vertex_array) or index.min() < 0:
        raise UserError(f"{path}: OBJ line indexes a missing vertex")
    return vertex_array[index]


def write_npz(path: str | os.PathLike[str], points: np.ndarray, root_uv: np.ndarray) -> None:
    """Write ``points`` (N, K, 3) and ``root_uv`` (N, 2), uncompressed: float32 coordinates
    shrink by 9 % under zip, which took a fifth of the time of generating a training style."""
    points = _oriented(points, "y")
    root_uv = np.asarray(root_uv, dtype=np.float32)
    if root_uv.shape != (points.shape[0], 2):
        raise UserError(f"root_uv must have shape ({points.shape[0]}, 2), got {root_uv.shape}")
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # a file object: numpy adds no suffix
        np.savez(fh, points=points, root_uv=root_uv)


def read_npz(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read (points, root_uv) from a strand .npz; never unpickles (``allow_pickle=False``)."""
    try:
        with np.load(Path(path), allow_pickle=False) as data:
            points, root_uv = data["points"].astype(np.float32), data["root_uv"].astype(np.float32)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (KeyError, ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise UserError(f"{path}: not a strand .npz with 'points' and 'root_uv' ({exc})") from None
    if points.ndim != 3 or points.shape[-1] != 3 or root_uv.shape != (points.shape[0], 2):
        raise UserError(
            f"{path}: points {points.shape} / root_uv {root_uv.shape} do not describe strands"
        )
    return points, root_uv


USD_SUFFIXES = (".usda", ".usdc", ".usd")


def write_usd(
    path: str | os.PathLike[str],
    points: np.ndarray,
    *,
    up_axis: str = "y",
    suffix: str | None = None,
) -> None:
    """Write strands as a USD ``BasisCurves`` prim (``/Groom/Hair``, linear, tapered widths).
    ``suffix`` (.usda, .usdc or .usd) names the format when ``path`` is a temporary name."""
    from pxr import Sdf, Usd, UsdGeom, Vt  # usd-core: imported here, it takes a moment to load

    suffix = (suffix or Path(path).suffix).lower()
    if suffix not in USD_SUFFIXES:
        raise UserError(f"{path}: USD output must end in .usda, .usdc or .usd")
    points = _oriented(points, up_axis)
    n_strands, n_points = points.shape[:2]
    layer = Sdf.Layer.CreateAnonymous(suffix)
    stage = Usd.Stage.Open(layer)
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z if up_axis == "z" else UsdGeom.Tokens.y)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    stage.SetDefaultPrim(UsdGeom.Xform.Define(stage, "/Groom").GetPrim())
    curves = UsdGeom.BasisCurves.Define(stage, "/Groom/Hair")
    curves.CreateTypeAttr(UsdGeom.Tokens.linear)
    curves.CreateCurveVertexCountsAttr(
        Vt.IntArray.FromNumpy(np.full(n_strands, n_points, dtype=np.int32))
    )
    curves.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(points.reshape(-1, 3))))
    widths = np.tile(np.linspace(ROOT_WIDTH, TIP_WIDTH, n_points, dtype=np.float32), n_strands)
    curves.CreateWidthsAttr(Vt.FloatArray.FromNumpy(widths))
    curves.SetWidthsInterpolation(UsdGeom.Tokens.vertex)
    with atomic_path(path) as tmp:
        # usd-core picks the file format from the extension, so export beside the temporary file
        # under the real suffix and move it over.
        named = tmp.with_name(tmp.name + suffix)
        try:
            if not layer.Export(str(named)):
                raise UserError(f"{path}: USD export failed")
            os.replace(named, tmp)
        finally:
            named.unlink(missing_ok=True)


def read_usd(path: str | os.PathLike[str]) -> np.ndarray:
    """Read the first BasisCurves prim of a USD file back to strands (N, K, 3), file's axes."""
    from pxr import Usd, UsdGeom

    try:
        stage = Usd.Stage.Open(str(path))
    except RuntimeError:  # pxr.Tf.ErrorException: a corrupt or foreign file, many lines of C++
        stage = None
    if stage is None:
        raise UserError(f"{path}: not a readable USD file (corrupt or another format)")
    for prim in stage.Traverse():
        if prim.IsA(UsdGeom.BasisCurves):
            curves = UsdGeom.BasisCurves(prim)
            counts = np.asarray(curves.GetCurveVertexCountsAttr().Get())
            vertices = np.asarray(curves.GetPointsAttr().Get(), dtype=np.float32)
            if len(set(counts.tolist())) != 1:
                raise UserError(f"{path}: curves differ in length")
            return vertices.reshape(len(counts), int(counts[0]), 3)
    raise UserError(f"{path}: no BasisCurves prim")


def _read_bytes(path: str | os.PathLike[str]) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, not a file") from None


def read_strands(path: str | os.PathLike[str]) -> np.ndarray:
    """Strands (N, K, 3) from any format this module writes, chosen by the file extension."""
    suffix = Path(path).suffix.lower()
    if suffix == ".npz":
        return read_npz(path)[0]
    if suffix == ".ply":
        return read_ply(path)
    if suffix == ".obj":
        return read_obj(path)
    if suffix in USD_SUFFIXES:
        if not Path(path).is_file():
            raise UserError(f"{path}: no such file")
        return read_usd(path)
    raise UserError(f"{path}: unknown strand format (use .npz, .ply, .obj, .usda, .usdc or .usd)")


def write_strands(
    path: str | os.PathLike[str], points: np.ndarray, root_uv: np.ndarray, *, up_axis: str = "y"
) -> Path:
    """Write strands in the format of the file extension (:func:`read_strands`'s): PLY, OBJ,
    .npz (with ``root_uv``; always y up) or USD. Returns the path."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".ply":
        write_ply(path, points, up_axis=up_axis)
    elif suffix == ".obj":
        write_obj(path, points, up_axis=up_axis)
    elif suffix == ".npz":
        write_npz(path, points, root_uv)
    elif suffix in USD_SUFFIXES:
        write_usd(path, points, up_axis=up_axis)
    else:
        raise UserError(
            f"{path}: unknown strand format (use .ply, .obj, .npz, .usda, .usdc or .usd)"
        )
    return path
