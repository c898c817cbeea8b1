"""One-shot portrait alignment: find the main face in a photo of any size and frame it."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from avatarify_app.config import CropConfig, TrackingConfig
from avatarify_app.errors import BadImageError, ConfigError, NoFaceError
from avatarify_app.frames import MIN_IMAGE_SIDE, as_frame, load_image
from avatarify_app.tracking.crop import CropBox, crop_box_for_landmarks
from avatarify_app.tracking.mediapipe_backend import FULL_RANGE, SHORT_RANGE, FaceDetector, FaceMesh
from avatarify_app.tracking.types import AlignedFace, Face

log = logging.getLogger(__name__)

BACKENDS = ("mediapipe", "face_alignment")
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


def check_backend(config: TrackingConfig) -> None:
    if config.backend not in BACKENDS:
        raise ConfigError(
            f"Unknown tracking back-end {config.backend!r}.",
            f"Use one of: {', '.join(BACKENDS)}.",
        )


def to_image(image: np.ndarray | str | Path) -> np.ndarray:
    """A frame from a frame-like array or an image path, or ``BadImageError``."""
    if isinstance(image, (str, Path)):
        return load_image(image)
    if not isinstance(image, np.ndarray):
        raise BadImageError(f"Expected an image array, got {type(image).__name__}.")
    try:
        frame = as_frame(image)
    except ValueError as exc:
        raise BadImageError(f"Not a usable picture: {exc}.") from exc
    if min(frame.shape[:2]) < MIN_IMAGE_SIDE:
        raise BadImageError(f"The picture is too small ({frame.shape[1]}x{frame.shape[0]}).")
    return frame


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
        frame = to_image(image)
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
            raise NoFaceError(
                "A face was detected but its features could not be located.",
                "Use a sharper photo where the whole face is visible and roughly frontal.",
            )
        lm68 = self._fan.landmarks68(frame, box) if self._fan is not None else None
        return Face(box=box, landmarks=landmarks, score=score, landmarks68=lm68)

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
        """Find the main face and frame it VoxCeleb-style (see ``tracking.crop``), with nudges."""
        frame = to_image(image)
        crop = crop or self.config.crop
        face = self.find_face(frame)
        assert face.landmarks is not None
        auto = crop_box_for_landmarks(face.landmarks).fitted_inside(frame.shape[0], frame.shape[1])
        box = auto.nudged(crop)
        if not math.isfinite(box.side):
            raise NoFaceError("The face framing failed.")
        return AlignedFace(
            image=box.extract(frame, crop.size),
            landmarks=box.to_crop(face.landmarks, crop.size),
            box=box,
            full_shape=(frame.shape[0], frame.shape[1]),
            face=face,
        )


def align_portrait(image: np.ndarray | str | Path, config: TrackingConfig | None = None) -> AlignedFace:
    """Frame the main face of one photo (static mode, short + full range detection).

    Raises ``BadImageError`` (not a usable picture) or ``NoFaceError``. Builds and closes its
    own graphs; for many photos keep one ``PortraitAligner``.
    """
    frame = to_image(image)
    with PortraitAligner(config) as aligner:
        return aligner.align(frame)
