"""Real-photo front end: find the face, align the head to the renders' framing, segment the hair.

photo -> face detection (largest face, or ``face=N``) -> similarity transform putting the eyes,
nose and mouth where they sit on our head model -> aligned 256^2 crop -> face mesh (468 points)
and person segmentation on the crop -> hair mask (GrabCut seeded by both) -> conditioning maps
(:func:`difforge.hair.maps.hair_maps`, the same function the training renders go through).

The detectors are MediaPipe's legacy models (BlazeFace full range, the 468-point face mesh and
the selfie segmenter), which the mediapipe 0.10.14 wheel bundles as .tflite files. They run here
through LiteRT (``ai-edge-litert``) rather than ``mediapipe.solutions``: that graph API needs
protobuf < 5, which conflicts with the protobuf >= 6 that the traj package (pyrosm) and
tensorboard require, and fails at run time beside it. So the pre- and post-processing (anchor
decoding, non-maximum suppression, crops) is written here. Without mediapipe's model files the
front end falls back to scikit-image's bundled LBP face cascade for the face box and GrabCut alone for the
hair, with a note.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import cv2
import numpy as np
from skimage.transform import SimilarityTransform

from difforge.core.errors import UserError
from difforge.hair.data.images import (
    conditioning_array,
    load_conditioning_image,
    load_hair_mask,
    load_photo,
)
from difforge.hair.maps import ANALYSIS_SIZE, hair_maps, maps_preview
from difforge.hair.render import VIEWS, render_groom

# Where the eyes, nose tip and mouth of a typical adult sit on our head model (metres, head
# frame; the subject's right eye is on the image left): eyes 6.3 cm apart and ~6.5 cm under the
# front hairline (the generator's is at y = 0.047), nose 3.5 cm and mouth 7 cm under the eyes.
CANONICAL_KEYPOINTS = np.array([[-0.0315, -0.018], [0.0315, -0.018], [0.0, -0.053], [0.0, -0.088]])
# The square the face mesh looks at (centre and side, metres), like MediaPipe's 1.5x face box.
MESH_REGION = ((0.0, -0.045), 0.25)
# Face-oval landmarks of the 468-point mesh, in order around the face (MediaPipe's FACE_OVAL).
FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400,
             377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67,
             109]  # fmt: skip
BROW_LANDMARKS = [70, 63, 105, 66, 107, 336, 296, 334, 293, 300]
MIN_FACE_SCORE = 0.6


@dataclass(frozen=True)
class Face:
    """A detected face in photo pixels: ``box`` (x0, y0, x1, y1), detector ``score`` (the
    cascade's: how many windows found it), and
    ``keypoints`` (4, 2): the subject's right eye, left eye, nose tip, mouth centre."""

    box: np.ndarray
    score: float
    keypoints: np.ndarray

    @property
    def area(self) -> float:
        return float((self.box[2] - self.box[0]) * (self.box[3] - self.box[1]))


@dataclass
class AlignedPhoto:
    """A photo brought into the renders' framing.

    ``rgb`` (256, 256, 3) uint8 crop; ``hair_mask`` (256, 256) bool; ``maps`` (128, 128, 3) the
    model's conditioning picture; ``matrix`` (2, 3) maps photo pixels to crop pixels; ``faces``
    every face found (largest first) and ``face`` the index used; ``mesh`` (468, 2) crop pixels or
    None (fallback); ``notes`` what was decided, for the user."""

    rgb: np.ndarray
    hair_mask: np.ndarray
    maps: np.ndarray
    matrix: np.ndarray
    faces: list[Face]
    face: int
    mesh: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)


def head_to_crop(xy: np.ndarray, size: int = ANALYSIS_SIZE) -> np.ndarray:
    """Head-frame (x, y) metres -> pixels of a front render of ``size``^2."""
    camera = VIEWS["front"]
    scale = size / (2 * camera.half_extent)
    x = (np.asarray(xy)[..., 0] - camera.center[0] + camera.half_extent) * scale
    y = (camera.half_extent - (np.asarray(xy)[..., 1] - camera.center[1])) * scale
    return np.stack([x, y], -1)


# --------------------------------------------------------------------------- models


def _mediapipe_modules() -> Path | None:
    """mediapipe's bundled model folder, found without importing mediapipe (its import needs
    protobuf < 5)."""
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        return None
    modules = Path(next(iter(spec.submodule_search_locations))) / "modules"
    return modules if (modules / "face_detection").is_dir() else None


@contextlib.contextmanager
def _quiet_stderr():
    """TFLite's C++ logging writes to file descriptor 2 directly; keep it off the console."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class _TFLiteModel:
    def __init__(self, path: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter

        with _quiet_stderr():
            self.interpreter = Interpreter(model_path=str(path), num_threads=2)
            self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.outputs = self.interpreter.get_output_details()

    def __call__(self, batch: np.ndarray) -> list[np.ndarray]:
        self.interpreter.set_tensor(self.input["index"], batch.astype(np.float32))
        with _quiet_stderr():
            self.interpreter.invoke()
        return [self.interpreter.get_tensor(o["index"]) for o in self.outputs]


@cache
def _model(name: str) -> _TFLiteModel | None:
    modules = _mediapipe_modules()
    if modules is None or importlib.util.find_spec("ai_edge_litert") is None:
        return None
    return _TFLiteModel(modules / name)


def front_end_available() -> bool:
    """Whether the MediaPipe models and LiteRT are installed (else the OpenCV fallback runs)."""
    return (
        _mediapipe_modules() is not None and importlib.util.find_spec("ai_edge_litert") is not None
    )


# --------------------------------------------------------------------------- face detection


def _letterbox(rgb: np.ndarray, size: int) -> tuple[np.ndarray, float, np.ndarray]:
    """Fit the photo into a square of ``size`` (padded): the square, its scale and offset."""
    height, width = rgb.shape[:2]
    scale = size / max(height, width)
    resized = cv2.resize(rgb, (max(1, round(width * scale)), max(1, round(height * scale))))
    square = np.zeros((size, size, 3), np.uint8)
    offset = np.array([(size - resized.shape[1]) // 2, (size - resized.shape[0]) // 2])
    square[offset[1] : offset[1] + resized.shape[0], offset[0] : offset[0] + resized.shape[1]] = (
        resized
    )
    return square, scale, offset


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0, y0 = np.maximum(box[0], boxes[:, 0]), np.maximum(box[1], boxes[:, 1])
    x1, y1 = np.minimum(box[2], boxes[:, 2]), np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / (area(box) + area(boxes) - inter + 1e-9)


# BlazeFace models: input side and anchor grids, as (cells per side, anchors per cell), in the
# order of the outputs. Full range: faces up to ~5 m away; short range: close-ups, which the full
# range model misses when a face fills the frame.
BLAZEFACE = {
    "face_detection/face_detection_full_range_sparse.tflite": (192, [(48, 1)]),
    "face_detection/face_detection_short_range.tflite": (128, [(16, 2), (8, 6)]),
}


@cache
def _anchor_centres(grids: tuple[tuple[int, int], ...]) -> np.ndarray:
    centres = []
    for cells, per_cell in grids:
        grid = (np.stack(np.meshgrid(np.arange(cells), np.arange(cells)), -1) + 0.5) / cells
        centres.append(np.repeat(grid.reshape(-1, 2), per_cell, axis=0))
    return np.concatenate(centres)


def _blazeface_candidates(rgb: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One BlazeFace model on one picture: boxes (M, 4), keypoints (M, 4, 2) in its pixels and
    scores (M,) above :data:`MIN_FACE_SCORE`."""
    size, grids = BLAZEFACE[name]
    square, scale, offset = _letterbox(rgb, size)
    regressors, scores = _model(name)(square[None] / 127.5 - 1.0)
    if regressors.shape[-1] == 1:  # outputs listed the other way round
        regressors, scores = scores, regressors
    cells = _anchor_centres(tuple(grids))
    raw = regressors[0] / size
    score = 1 / (1 + np.exp(-np.clip(scores[0, :, 0], -80, 80)))
    keep = score >= MIN_FACE_SCORE
    centre = raw[keep, :2] + cells[keep]
    half = raw[keep, 2:4] / 2
    boxes = np.concatenate([centre - half, centre + half], 1).reshape(-1, 2, 2)
    keypoints = raw[keep, 4:].reshape(-1, 6, 2)[:, :4] + cells[keep, None]
    to_photo = lambda p: (p * size - offset) / scale  # noqa: E731
    return to_photo(boxes).reshape(-1, 4), to_photo(keypoints), score[keep]


def _square_tiles(height: int, width: int) -> list[tuple[int, int, int]]:
    """(x, y, side) squares of the short side along the long one, overlapping by at least a
    quarter: on a wide group photo each face is seen larger than in the whole letterboxed."""
    side, long = min(height, width), max(height, width)
    if long < 1.3 * side:
        return []
    count = int(np.ceil((long - side) / (0.75 * side))) + 1
    starts = np.linspace(0, long - side, count).round().astype(int)
    return [(int(s), 0, side) if width > height else (0, int(s), side) for s in starts]


def _merge_faces(boxes: np.ndarray, keypoints: np.ndarray, score: np.ndarray) -> list[Face]:
    """Weighted non-maximum suppression (MediaPipe's): overlapping boxes average by score."""
    faces = []
    order = np.argsort(-score)
    while order.size:
        overlap = _iou(boxes[order[0]], boxes[order]) > 0.3
        members, weights = order[overlap], score[order[overlap]][:, None]
        faces.append(
            Face(
                box=(boxes[members] * weights).sum(0) / weights.sum(),
                score=float(score[order[0]]),
                keypoints=(keypoints[members] * weights[:, :, None]).sum(0) / weights.sum(),
            )
        )
        order = order[~overlap]
    return faces


def _blazeface(rgb: np.ndarray) -> list[Face]:
    found = []
    for name in BLAZEFACE:
        found.append(_blazeface_candidates(rgb, name))
        for x, y, side in _square_tiles(*rgb.shape[:2]):
            boxes, keypoints, score = _blazeface_candidates(rgb[y : y + side, x : x + side], name)
            shift = np.array([x, y], float)
            found.append((boxes + np.tile(shift, 2), keypoints + shift, score))
    return _merge_faces(*(np.concatenate(parts) for parts in zip(*found)))


def _cascade_faces(rgb: np.ndarray) -> list[Face]:
    """scikit-image's bundled LBP frontal-face cascade (OpenCV 5 wheels dropped the Haar
    cascades); keypoints from average face proportions. The cascade alone fires on textured
    clothes, so a window must also be mostly skin-coloured in its middle (the classic YCrCb
    range); its ``score`` is that skin fraction."""
    from skimage import data, feature

    cascade = feature.Cascade(data.lbp_frontal_face_cascade_filename())
    side = min(rgb.shape[:2])
    windows = cascade.detect_multi_scale(
        img=rgb, scale_factor=1.2, step_ratio=1, min_size=(24, 24), max_size=(side, side)
    )
    ycrcb = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
    skin = cv2.inRange(ycrcb, (0, 133, 77), (255, 173, 127)) > 0
    boxes, scores = [], []
    for w in windows:
        x, y, size = w["c"], w["r"], w["width"]
        middle = skin[y + size // 4 : y + 3 * size // 4, x + size // 4 : x + 3 * size // 4]
        boxes.append([x, y, x + size, y + w["height"]])
        scores.append(float(middle.mean()) if middle.size else 0.0)
    boxes, scores = np.array(boxes, float).reshape(-1, 4), np.array(scores)
    boxes, scores = boxes[scores >= 0.35], scores[scores >= 0.35]
    fractions = np.array([[0.3, 0.38], [0.7, 0.38], [0.5, 0.6], [0.5, 0.8]])
    keypoints = boxes[:, None, :2] + fractions[None] * (boxes[:, 2:] - boxes[:, :2])[:, None]
    return _merge_faces(boxes, keypoints, scores)


def detect_faces(rgb: np.ndarray) -> list[Face]:
    """Every face in an (H, W, 3) uint8 photo, largest first."""
    faces = _blazeface(rgb) if front_end_available() else _cascade_faces(rgb)
    return sorted(faces, key=lambda face: -face.area)


# --------------------------------------------------------------------------- alignment


def _face_mesh(crop: np.ndarray) -> np.ndarray | None:
    """468 face-mesh points (crop pixels) of the aligned crop's face, or None if it finds none."""
    model = _model("face_landmark/face_landmark.tflite")
    (cx, cy), side = MESH_REGION
    corner = head_to_crop(np.array([cx - side / 2, cy + side / 2]))
    pixels = side / (2 * VIEWS["front"].half_extent) * ANALYSIS_SIZE
    matrix = np.array(
        [[192 / pixels, 0, -corner[0] * 192 / pixels], [0, 192 / pixels, -corner[1] * 192 / pixels]]
    )
    window = cv2.warpAffine(crop, matrix, (192, 192), flags=cv2.INTER_AREA)
    landmarks, presence = model(window[None] / 255.0)
    if 1 / (1 + np.exp(-presence.reshape(-1)[0])) < 0.5:
        return None
    points = landmarks.reshape(468, 3)[:, :2]
    return points * pixels / 192 + corner


def _person_mask(crop: np.ndarray) -> np.ndarray:
    model = _model("selfie_segmentation/selfie_segmentation.tflite")
    (probability,) = model(cv2.resize(crop, (256, 256))[None] / 255.0)
    return cv2.resize(probability[0, :, :, 0], crop.shape[1::-1])


def _polygon_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
    return mask.astype(bool)


def _gaussian_distance(lab: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance (diagonal) of every pixel's Lab colour to ``samples``'."""
    if len(samples) < 20:
        return np.full(lab.shape[:2], np.inf, np.float32)
    mean, std = samples.mean(0), samples.std(0) + 4.0
    return (((lab - mean) / std) ** 2).sum(-1)


def _touching(mask: np.ndarray, anchor: np.ndarray, min_area: int = 0) -> np.ndarray:
    """The connected pieces of ``mask`` that overlap ``anchor`` (and have ``min_area`` pixels)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
    keep = np.zeros(count, bool)
    keep[np.unique(labels[anchor & mask])] = True
    keep[0] = False
    keep &= stats[:, cv2.CC_STAT_AREA] >= min_area
    return keep[labels]


def segment_hair(
    crop: np.ndarray, mesh: np.ndarray | None, person: np.ndarray | None
) -> np.ndarray:
    """Hair mask of an aligned crop: GrabCut on colour, seeded from the person mask and the face.

    Seeds: outside the person (the segmenter's component holding the face) and the face below
    the brows are never hair, nor is bare forehead (the cheeks' colour); the person around the
    upper face (crown, temples) is surely hair unless it has the cheeks' colour (a bald crown);
    the rest of the person is probably hair above the chin and beside the neck below it, and
    probably not elsewhere (throat, clothes, arms). Only hair that reaches the head is kept."""
    size = crop.shape[0]
    if mesh is None:  # the fallback: the canonical face in place of the mesh
        around = np.linspace(0, 2 * np.pi, 36, endpoint=False)
        oval = head_to_crop(np.stack([0.07 * np.sin(around), -0.06 + 0.075 * np.cos(around)], -1))
        brow_y, chin_y = head_to_crop(np.array([[0, 0.0], [0, -0.13]]))[:, 1]
    else:
        oval = mesh[FACE_OVAL]
        brow_y, chin_y = mesh[BROW_LANDMARKS, 1].mean(), mesh[152, 1]
    face = _polygon_mask(oval, (size, size))
    rows = np.arange(size)[:, None] * np.ones((1, size))
    columns = np.arange(size)[None, :] * np.ones((size, 1))
    near_head = cv2.dilate(face.astype(np.uint8), np.ones((41, 41), np.uint8)).astype(bool)
    if person is None:  # no segmenter: GrabCut from a box around the head and shoulders
        person = _grabcut_person(crop, face)
    body = _touching(person > 0.5, face)

    lab = cv2.cvtColor(crop, cv2.COLOR_RGB2LAB).astype(np.float32)
    skin = _gaussian_distance(lab, lab[face & (rows > brow_y) & (rows < chin_y)])
    centre, half_width = oval[:, 0].mean(), (oval[:, 0].max() - oval[:, 0].min()) / 2
    reach = np.abs(columns - centre) / half_width
    below = rows > chin_y + 0.02 * size

    trimap = np.full((size, size), cv2.GC_PR_BGD, np.uint8)
    trimap[body & ~face & ~below] = cv2.GC_PR_FGD
    trimap[body & below & (reach >= 0.45) & (reach <= 1.8)] = cv2.GC_PR_FGD
    trimap[face & (rows <= brow_y) & (skin > 9.0)] = cv2.GC_PR_FGD  # a fringe, maybe
    trimap[(person > 0.8) & near_head & ~face & (rows < brow_y) & (skin > 4.0)] = cv2.GC_FGD
    trimap[face & (rows > brow_y)] = cv2.GC_BGD
    trimap[face & (rows <= brow_y) & (skin < 4.0)] = cv2.GC_BGD  # bare forehead
    trimap[~body | (person < 0.2)] = cv2.GC_BGD
    # Below the chin: not in front of the throat or out on the arms (a dark suit is the colour
    # of dark hair).
    trimap[below & ((reach < 0.45) | (reach > 1.8))] = cv2.GC_BGD
    if not np.isin(trimap, (cv2.GC_FGD, cv2.GC_PR_FGD)).any():
        return np.zeros((size, size), bool)
    hair = _grabcut(crop, trimap) & (person > 0.5)
    return _touching(hair, near_head, int(0.002 * size * size))


def _grabcut(crop: np.ndarray, trimap: np.ndarray) -> np.ndarray:
    """Foreground of GrabCut started from ``trimap`` (cv2.GC_* labels), deterministically."""
    trimap = trimap.copy()
    background, foreground = np.zeros((1, 65)), np.zeros((1, 65))
    with contextlib.suppress(cv2.error):  # one of the two classes is empty: keep the seeds
        cv2.setRNGSeed(0)  # GrabCut seeds its colour models by k-means on OpenCV's global RNG
        cv2.grabCut(crop, trimap, None, background, foreground, 4, cv2.GC_INIT_WITH_MASK)
    return np.isin(trimap, (cv2.GC_FGD, cv2.GC_PR_FGD))


def _grabcut_person(crop: np.ndarray, face: np.ndarray) -> np.ndarray:
    """Without the person segmenter: GrabCut from the head and shoulders' likely box."""
    size = crop.shape[0]
    trimap = np.full((size, size), cv2.GC_PR_BGD, np.uint8)
    ys, xs = np.nonzero(face)
    width = xs.max() - xs.min()
    trimap[max(0, ys.min() - width) :, max(0, xs.min() - width) : xs.max() + width] = cv2.GC_PR_FGD
    trimap[face] = cv2.GC_FGD
    return _grabcut(crop, trimap).astype(np.float32)


MAX_YAW = 30.0  # degrees: beyond this the frontal framing misplaces the hair (RESULTS.md)


def head_yaw(mesh: np.ndarray) -> float:
    """Rough head turn (degrees, + = toward the subject's left) from the face mesh: where the
    nose tip (landmark 1) sits between the cheek edges (234, 454), on a cylinder."""
    right, left, nose = mesh[234, 0], mesh[454, 0], mesh[1, 0]
    where = np.clip(2 * (nose - right) / max(left - right, 1e-6) - 1, -1.0, 1.0)
    return float(np.degrees(np.arcsin(where)))


def align_photo(
    rgb: np.ndarray,
    face: int | None = None,
    source: str = "picture",
    hair_mask: np.ndarray | None = None,
) -> AlignedPhoto:
    """Find the faces of an (H, W, 3) uint8 photo and bring the chosen one (default: the
    largest) into the renders' framing; :class:`~difforge.core.errors.UserError` if none.
    ``hair_mask`` (H, W) bool: the user's own hair mask, used instead of :func:`segment_hair`."""
    notes: list[str] = []
    faces = detect_faces(rgb)
    if not faces:
        raise UserError(f"no face found in {source}")
    if face is None:
        face = 0
        if len(faces) > 1:
            notes.append(
                f"{len(faces)} faces found; using the largest (--face 0..{len(faces) - 1})"
            )
    elif not 0 <= face < len(faces):
        raise UserError(f"{source} has {len(faces)} face(s); --face must be 0..{len(faces) - 1}")
    if not front_end_available():
        notes.append("MediaPipe models not installed: cascade face box and colour-only hair mask")
    chosen = faces[face]
    similarity = SimilarityTransform.from_estimate(  # least squares (Umeyama)
        chosen.keypoints, head_to_crop(CANONICAL_KEYPOINTS)
    )
    matrix = similarity.params[:2]
    crop = cv2.warpAffine(
        rgb, matrix, (ANALYSIS_SIZE, ANALYSIS_SIZE), flags=cv2.INTER_AREA,
        borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0),
    )  # fmt: skip
    inside = cv2.warpAffine(
        np.ones(rgb.shape[:2], np.uint8), matrix, (ANALYSIS_SIZE, ANALYSIS_SIZE)
    ).astype(bool)
    mesh = person = None
    if front_end_available():
        mesh = _face_mesh(crop)
    yaw = None if mesh is None else head_yaw(mesh)
    if yaw is not None and abs(yaw) > MAX_YAW:
        notes.append(
            f"the head is turned about {abs(yaw):.0f}° to their {'left' if yaw > 0 else 'right'}: "
            "the groom is generated for a frontal view"
        )
    if hair_mask is not None:
        warped = cv2.warpAffine(
            hair_mask.astype(np.uint8), matrix, (ANALYSIS_SIZE,) * 2, flags=cv2.INTER_NEAREST
        )
        hair = warped.astype(bool) & inside
        notes.append("hair mask given: the segmenter did not run")
    else:
        if front_end_available():
            person = _person_mask(crop) * inside
        hair = segment_hair(crop, mesh, person) & inside
    return AlignedPhoto(
        rgb=crop,
        hair_mask=hair,
        maps=hair_maps(crop, hair),
        matrix=matrix,
        faces=faces,
        face=face,
        mesh=mesh,
        notes=notes,
    )


def model_picture(
    image: str | os.PathLike[str] | np.ndarray | None,
    condition: str,
    size: int,
    face: int | None = None,
    hair_mask: str | os.PathLike[str] | np.ndarray | None = None,
    maps: str | os.PathLike[str] | np.ndarray | None = None,
) -> tuple[np.ndarray, list[str], AlignedPhoto | None]:
    """What a model with conditioning ``condition`` takes for a user's picture (a file or an
    array): the maps of the aligned photo (``"maps"``; ``hair_mask``, a file or array the size
    of the photo, replaces the front end's segmentation), or the picture centre-cropped and
    resized (``"rgb"``, old models); or, given ``maps`` (a file or array) instead of ``image``,
    those maps as they are. Also the notes for the user and the aligned photo (or None)."""
    if maps is not None:
        if condition != "maps":
            raise UserError("this model takes pictures, not maps")
        if isinstance(maps, np.ndarray):
            return (*conditioning_array(maps, size), None)
        return (*load_conditioning_image(maps, size), None)
    if condition == "rgb":
        if hair_mask is not None:
            raise UserError("a hair mask needs a model that takes maps (this one takes renders)")
        if isinstance(image, np.ndarray):
            return (*conditioning_array(image, size), None)
        return (*load_conditioning_image(image, size), None)
    rgb, notes = load_photo(image)
    source = "picture" if isinstance(image, np.ndarray) else str(image)
    mask = None if hair_mask is None else load_hair_mask(hair_mask, rgb.shape[:2])
    aligned = align_photo(rgb, face, source, mask)
    maps = (
        aligned.maps
        if aligned.maps.shape[0] == size
        else hair_maps(aligned.rgb, aligned.hair_mask, size)
    )
    return maps, notes + aligned.notes, aligned


def trim_to_mask(points: np.ndarray, hair_mask: np.ndarray, margin: int = 4) -> np.ndarray:
    """Cut every strand where it first leaves the photo's hair (``hair_mask``, the aligned
    crop's, grown by ``margin`` px) in the front view, unless the head hides it there; the kept
    part is resampled to the same number of points (a strand that leaves at once keeps its first
    segment). The silhouette is then the photo's where the groom overshoots it; missing hair is
    not added (RESULTS.md, "Trimming to the mask": it helps with good masks, hurts with bad)."""
    from difforge.hair.data.head import DEFAULT_HEAD
    from difforge.hair.export_tools import resample_strands

    size = hair_mask.shape[0]
    allowed = cv2.dilate(hair_mask.astype(np.uint8), np.ones((2 * margin + 1,) * 2, np.uint8))
    pixels = head_to_crop(points[..., :2], size)
    on_crop = ((pixels >= 0) & (pixels < size)).all(-1)
    cols, rows = np.clip(np.round(pixels).astype(int), 0, size - 1).transpose(2, 0, 1)
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    radii, head = DEFAULT_HEAD.radii, DEFAULT_HEAD
    behind_head = (z < 0) & (
        ((x / radii[0]) ** 2 + (y / radii[1]) ** 2 <= 1.0)
        | ((np.abs(x) <= head.neck_radius) & (y < head.neck_top))
    )
    leaves = ~((allowed[rows, cols] > 0) & on_crop | behind_head)
    leaves[:, 0] = False
    first = np.where(leaves.any(1), leaves.argmax(1), points.shape[1])
    trimmed = np.array(points, copy=True)
    for strand in np.nonzero(first < points.shape[1])[0]:
        kept = points[strand : strand + 1, : max(int(first[strand]), 2)]
        trimmed[strand] = resample_strands(kept, points.shape[1])[0]
    return trimmed


def photo_panels(aligned: AlignedPhoto, points: np.ndarray) -> list[np.ndarray]:
    """Pictures for people: the aligned crop, its maps, and the groom's front render laid over
    the crop (where its hair is), each 256^2."""
    front = render_groom(points, VIEWS["front"], ANALYSIS_SIZE, supersample=1)
    overlay = aligned.rgb.copy()
    overlay[front.hair_mask] = front.rgb[front.hair_mask]
    preview = cv2.resize(
        maps_preview(aligned.maps), (ANALYSIS_SIZE, ANALYSIS_SIZE), interpolation=cv2.INTER_NEAREST
    )
    return [aligned.rgb, preview, overlay]
