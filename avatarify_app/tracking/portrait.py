"""One-shot portrait alignment: find the main face in a photo of any size and frame it."""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from avatarify_app.config import CropConfig, TrackingConfig
from avatarify_app.errors import BadImageError, ConfigError, NoFaceError
from avatarify_app.frames import MIN_IMAGE_SIDE, as_frame, flatten_alpha, limit_size, read_image
from avatarify_app.tracking.crop import FACE_FRACTION, CropBox, crop_box_for_landmarks, face_size
from avatarify_app.tracking.mediapipe_backend import FULL_RANGE, SHORT_RANGE, FaceDetector, FaceMesh
from avatarify_app.tracking.types import AlignedFace, Face

log = logging.getLogger(__name__)

LANDMARK_BACKENDS = ("mediapipe", "face_alignment")
# The mesh runs on a square region around the detector box, this many box sides wide ...
MESH_REGION_SCALE = 2.2
# ... resampled to this many px (the mesh model itself looks at 192x192).
MESH_REGION_SIZE = 384
# When no face is found in the whole picture, the full-range detector (which finds faces down
# to ~7.5% of its input's side) searches overlapping tiles of half, then a quarter ... of the
# short side, down to TILE_MIN_SIDE px: faces down to ~20 px tall in any photo size.
TILE_MIN_SIDE = 256
TILE_STEP = 0.6
# Detections tried (biggest first) before giving up on finding a mesh.
MAX_CANDIDATES = 4
# A detection at least this confident is a face (real faces score 0.75-0.97 with one of the two
# detectors; false detections in noise or texture 0.5-0.6): it counts as one more face in the
# picture, and a face whose features cannot be located is called a face rather than "no face".
LIKELY_FACE_SCORE = 0.7
# When the face crop enlarges the picture's face more than this, the animation will look blurry
# (at 256 px: a face under ~100 px, forehead to chin).
BLURRY_UPSCALE = 1.1


def check_backend(config: TrackingConfig) -> None:
    if config.backend not in LANDMARK_BACKENDS:
        raise ConfigError(
            f"Unknown tracking back-end {config.backend!r}.",
            f"Use one of: {', '.join(LANDMARK_BACKENDS)}.",
        )


def to_image_noted(image: np.ndarray | str | Path) -> tuple[np.ndarray, tuple[str, ...]]:
    """A frame from a frame-like array or an image path, and the notes on how it was read
    (``frames.read_image``; an array is held to the same size limit and its alpha flattened
    the same way), or ``BadImageError``."""
    if isinstance(image, (str, Path)):
        loaded = read_image(image)
        return loaded.frame, loaded.notes
    if not isinstance(image, np.ndarray):
        raise BadImageError(f"Expected an image array, got {type(image).__name__}.")
    notes: list[str] = []
    if image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 4:
        image, transparent = flatten_alpha(image)
        if transparent:
            notes.append("The picture is partly transparent; it was placed on a neutral grey background.")
            log.warning("%s", notes[-1])
    try:
        frame = as_frame(image)
    except ValueError as exc:
        raise BadImageError(f"Not a usable picture: {exc}.") from exc
    if min(frame.shape[:2]) < MIN_IMAGE_SIDE:
        raise BadImageError(f"The picture is too small ({frame.shape[1]}x{frame.shape[0]}).")
    frame, note = limit_size(frame)
    if note:
        notes.append(note)
    return frame, tuple(notes)


def to_image(image: np.ndarray | str | Path) -> np.ndarray:
    """A frame from a frame-like array or an image path, or ``BadImageError``."""
    return to_image_noted(image)[0]


def _same_face(a: np.ndarray, b: np.ndarray) -> bool:
    """Two detector boxes of one face: they overlap much, or one's centre lies in the other."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    if union > 0 and inter / union > 0.3:
        return True
    for p, q in ((a, b), (b, a)):
        cx, cy = (p[0] + p[2]) / 2, (p[1] + p[3]) / 2
        if q[0] <= cx <= q[2] and q[1] <= cy <= q[3]:
            return True
    return False


def _distinct_faces(found: list[tuple[np.ndarray, float]], used: np.ndarray) -> list[np.ndarray]:
    """One box per face (the biggest of its duplicates), biggest first, among detections sorted
    biggest first; a face counts when one of its detections reaches LIKELY_FACE_SCORE or it is
    the ``used`` one."""
    groups: list[tuple[np.ndarray, float]] = []
    for box, score in found:
        for i, (kept, best) in enumerate(groups):
            if _same_face(box, kept):
                groups[i] = (kept, max(best, score))
                break
        else:
            groups.append((box, score))
    return [box for box, best in groups if best >= LIKELY_FACE_SCORE or _same_face(box, used)]


def _ordinal(n: int) -> str:
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(n, f"{n}th")


def _which_face_note(found: list[tuple[np.ndarray, float]], used: np.ndarray) -> str | None:
    """ "2 faces found; animating the largest (left)." when the picture shows several faces."""
    faces = _distinct_faces(found, used)
    if len(faces) < 2:
        return None
    rank = next((i for i, f in enumerate(faces) if _same_face(f, used)), 0)
    by_x = sorted(range(len(faces)), key=lambda i: float(faces[i][0] + faces[i][2]))
    k = by_x.index(rank)
    where = "left" if k == 0 else "right" if k == len(faces) - 1 else f"{_ordinal(k + 1)} from the left"
    which = "the largest" if rank == 0 else f"the {_ordinal(rank + 1)} largest"
    note = f"{len(faces)} faces found; animating {which} ({where})."
    if rank > 0:
        note += " The larger ones' features could not be located."
    return note


def _tiles(h: int, w: int, side: int) -> list[tuple[int, int, int]]:
    """Overlapping square tiles (x0, y0, side) covering the image (overlap 40% of a tile)."""
    side = min(side, h, w)
    step = max(1, int(side * TILE_STEP))
    xs = list(range(0, w - side + 1, step))
    ys = list(range(0, h - side + 1, step))
    if xs[-1] + side < w:
        xs.append(w - side)
    if ys[-1] + side < h:
        ys.append(h - side)
    return [(x, y, side) for y in ys for x in xs]


class PortraitAligner:
    """Finds and frames the main face of photos; owns static-mode mediapipe graphs.

    Build once and reuse (each graph costs tens of ms to build); use from one thread;
    ``close()`` when done (or use it as a context manager).
    """

    def __init__(self, config: TrackingConfig | None = None) -> None:
        self.config = config or TrackingConfig()
        check_backend(self.config)
        conf = self.config.min_detection_confidence
        self._detectors = [FaceDetector(SHORT_RANGE, conf), FaceDetector(FULL_RANGE, conf)]
        self._mesh = FaceMesh(static=True, min_detection_confidence=min(conf, 0.5))
        self._fan = None
        if self.config.backend == "face_alignment":
            from avatarify_app.tracking.fan_backend import FanLandmarks

            self._fan = FanLandmarks.if_available()

    def __enter__(self) -> PortraitAligner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for det in self._detectors:
            det.close()
        self._detectors = []
        if self._mesh is not None:
            self._mesh.close()
            self._mesh = None  # type: ignore[assignment]
        if self._fan is not None:
            self._fan.close()
            self._fan = None

    # -- detection ------------------------------------------------------------------------
    def _detect(self, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        found: list[tuple[np.ndarray, float]] = []
        for det in self._detectors:  # short range (near faces), then full range (small faces)
            found += det.detect(image)
        h, w = image.shape[:2]
        full = self._detectors[1]
        side = min(h, w) // 2
        while not found and side >= TILE_MIN_SIDE:
            for x0, y0, t in _tiles(h, w, side):
                tile = np.ascontiguousarray(image[y0 : y0 + t, x0 : x0 + t])
                for box, score in full.detect(tile):
                    found.append((box + np.array([x0, y0, x0, y0], np.float32), score))
            side //= 2
        return found

    def find_face(self, image: np.ndarray | str | Path) -> Face:
        """The largest face in ``image`` with its 468-point mesh, in image px, or ``NoFaceError``."""
        return self._find(to_image(image))[0]

    def _find(self, frame: np.ndarray) -> tuple[Face, str | None]:
        """The main face of ``frame`` and, when there are several, the note saying which one."""
        if self._mesh is None:
            raise RuntimeError("PortraitAligner is closed")
        found = self._detect(frame)
        if not found:
            raise NoFaceError("No face found in the picture.")
        # The main face: the biggest, ties broken by confidence; the next ones if no mesh fits.
        found.sort(key=lambda f: (-float((f[0][2] - f[0][0]) * (f[0][3] - f[0][1])), -f[1]))
        landmarks, box, score = None, found[0][0], found[0][1]
        for candidate, candidate_score in found[:MAX_CANDIDATES]:
            landmarks = self._mesh_around(frame, candidate)
            if landmarks is not None:
                box, score = candidate, candidate_score
                break
        if landmarks is None:
            if max(s for _, s in found) < LIKELY_FACE_SCORE:
                # Only weak detections (texture, noise) and no face mesh: there is no face.
                log.info("weak detections without a face mesh (best score %.2f)", max(s for _, s in found))
                raise NoFaceError("No face found in the picture.")
            raise NoFaceError(
                "A face was found but its features could not be located.",
                "Use a sharper photo where the whole face is visible and roughly frontal.",
            )
        lm68 = self._fan.landmarks68(frame, box) if self._fan is not None else None
        note = _which_face_note(found, box)
        return Face(box=box, landmarks=landmarks, score=score, landmarks68=lm68), note

    def _mesh_around(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        bw, bh = float(box[2] - box[0]), float(box[3] - box[1])
        region = CropBox(
            float(box[0] + box[2]) / 2, float(box[1] + box[3]) / 2, MESH_REGION_SCALE * max(bw, bh)
        )
        pts = self._mesh.landmarks(region.extract(frame, MESH_REGION_SIZE))
        if pts is not None:
            return region.to_image(pts, MESH_REGION_SIZE)
        # The region can miss a face whose box is a poor fit (strong rotation): try the whole picture.
        pts = self._mesh.landmarks(frame)
        if pts is None:
            return None
        centre = pts.mean(axis=0)
        inside = box[0] - bw <= centre[0] <= box[2] + bw and box[1] - bh <= centre[1] <= box[3] + bh
        return pts if inside else None

    # -- framing --------------------------------------------------------------------------
    def align(self, image: np.ndarray | str | Path, crop: CropConfig | None = None) -> AlignedFace:
        """Find the main face and frame it VoxCeleb-style (see ``tracking.crop``), with nudges.

        ``AlignedFace.notes`` says how the picture was read (``to_image_noted``), which face is
        animated when there are several, and that a small face will look blurry (each logged)."""
        frame, notes = to_image_noted(image)
        crop = crop or self.config.crop
        face, which = self._find(frame)
        assert face.landmarks is not None
        auto = crop_box_for_landmarks(face.landmarks).fitted_inside(frame.shape[0], frame.shape[1])
        box = auto.nudged(crop)
        if not math.isfinite(box.side):
            raise NoFaceError("The face framing failed.")
        found = [n for n in (which, _blurry_note(face.landmarks, box, crop.size)) if n]
        for note in found:
            log.warning("%s", note)
        return AlignedFace(
            image=box.extract(frame, crop.size),
            landmarks=box.to_crop(face.landmarks, crop.size),
            box=box,
            full_shape=(frame.shape[0], frame.shape[1]),
            face=face,
            notes=(*notes, *found),
        )


def _blurry_note(landmarks: np.ndarray, box: CropBox, size: int) -> str | None:
    """The note for a face the crop must enlarge by more than BLURRY_UPSCALE, else None."""
    upscale = size / box.side
    if upscale <= BLURRY_UPSCALE:
        return None
    need = math.ceil(FACE_FRACTION * size)
    return (f"The face is only {face_size(landmarks):.0f} px tall in the picture and is enlarged "
            f"{upscale:.1f}x for animation: the output will look blurry. A photo where the face "
            f"is at least {need} px tall gives a sharp result.")


def align_portrait(image: np.ndarray | str | Path, config: TrackingConfig | None = None) -> AlignedFace:
    """Frame the main face of one photo (static mode, short + full range detection).

    Raises ``BadImageError`` (not a usable picture) or ``NoFaceError``. Builds and closes its
    own graphs; for many photos keep one ``PortraitAligner``. ``AlignedFace.notes`` as
    ``PortraitAligner.align``.
    """
    frame, notes = to_image_noted(image)
    with PortraitAligner(config) as aligner:
        aligned = aligner.align(frame)
    return replace(aligned, notes=(*notes, *aligned.notes)) if notes else aligned
