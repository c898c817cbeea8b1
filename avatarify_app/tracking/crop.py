"""Square face crops: the framing FOMM's VoxCeleb models expect, and the box geometry.

Framing (constants below, measured on mediapipe meshes of real photos): a face detector's
box is about as tall as the mesh's face oval from the upper forehead (point 10) to the chin
(point 152). VoxCeleb crops, which FOMM's ``vox`` checkpoints were trained on, show the whole
head with a little of the shoulders: that face box fills about 42% of the crop side and the
face sits a little above the centre. So:

    face_size = max(|p10 - p152|, OVAL_ASPECT * |p234 - p454|)   # height, or width when pitched
    side      = face_size / FACE_FRACTION                         # 2.38 x face height
    centre    = midpoint(p10, p152) + (0, CENTRE_DROP * side)     # face centre at 44% from top

Both distances are Euclidean, so head roll does not change the size; taking the larger of
height and (aspect-corrected) width keeps the size steady when the head nods or turns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from avatarify_app.config import CropConfig
from avatarify_app.frames import resize

FACE_FRACTION = 0.42
"""Face box (forehead-to-chin) as a fraction of the crop side."""
OVAL_ASPECT = 1.18
"""Typical mesh oval height / width (astronaut 1.12, Einstein 1.18, Mona Lisa 1.24)."""
CENTRE_DROP = 0.06
"""Crop centre lies this fraction of the side below the face centre (face centre at 44% height)."""

FOREHEAD, CHIN, CHEEK_RIGHT, CHEEK_LEFT = 10, 152, 234, 454
# Downscale in one resize (area filter) before the sub-pixel warp when shrinking more than this.
_PREFILTER_RATIO = 1.5


@dataclass(frozen=True)
class CropBox:
    """A square crop in image pixels: centre ``(cx, cy)`` and ``side``; may extend past the image."""

    cx: float
    cy: float
    side: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.cx) and math.isfinite(self.cy) and math.isfinite(self.side)):
            raise ValueError(f"CropBox needs finite numbers, got {self}")
        if self.side <= 0:
            raise ValueError(f"CropBox side must be positive, got {self.side}")

    @property
    def x0(self) -> float:
        return self.cx - self.side / 2

    @property
    def y0(self) -> float:
        return self.cy - self.side / 2

    def as_xyxy(self) -> np.ndarray:
        """The box as float32 (4,) x0, y0, x1, y1."""
        h = self.side / 2
        return np.array([self.cx - h, self.cy - h, self.cx + h, self.cy + h], np.float32)

    def to_crop(self, points: np.ndarray, size: int = 256) -> np.ndarray:
        """Image px -> crop px of a ``size`` x ``size`` crop. Nx2 float32."""
        p = np.asarray(points, np.float32)
        s = size / self.side
        return ((p - np.array([self.x0, self.y0], np.float32)) * s).astype(np.float32)

    def to_image(self, points: np.ndarray, size: int = 256) -> np.ndarray:
        """Crop px of a ``size`` x ``size`` crop -> image px. Nx2 float32."""
        p = np.asarray(points, np.float32)
        s = self.side / size
        return (p * s + np.array([self.x0, self.y0], np.float32)).astype(np.float32)

    def extract(self, frame: np.ndarray, size: int = 256) -> np.ndarray:
        """The crop as a ``size`` x ``size`` frame; outside the image the border is replicated.

        Sub-pixel exact (a smoothly moving box gives a smoothly moving crop); strong shrinking
        is area-filtered first so a big photo does not alias.
        """
        h, w = frame.shape[:2]
        # Region of the image the crop can touch (at least one pixel, even when fully outside).
        rx0 = min(max(math.floor(self.x0) - 1, 0), w - 1)
        ry0 = min(max(math.floor(self.y0) - 1, 0), h - 1)
        rx1 = max(min(math.ceil(self.x0 + self.side) + 2, w), rx0 + 1)
        ry1 = max(min(math.ceil(self.y0 + self.side) + 2, h), ry0 + 1)
        region = frame[ry0:ry1, rx0:rx1]
        ratio = self.side / size  # image px per crop px
        fx = fy = 1.0
        if ratio > _PREFILTER_RATIO:
            rw, rh = region.shape[1], region.shape[0]
            nw, nh = max(1, round(rw / ratio)), max(1, round(rh / ratio))
            region = cv2.resize(region, (nw, nh), interpolation=cv2.INTER_AREA)
            fx, fy = nw / rw, nh / rh
        # crop (u, v) -> image x = x0 + u * ratio -> region px xs = (x - rx0 + 0.5) * fx - 0.5
        m = np.array(
            [
                [ratio * fx, 0.0, (self.x0 - rx0 + 0.5) * fx - 0.5],
                [0.0, ratio * fy, (self.y0 - ry0 + 0.5) * fy - 0.5],
            ],
            np.float64,
        )
        out = cv2.warpAffine(
            region, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        return np.ascontiguousarray(out)

    def fitted_inside(self, height: int, width: int, max_shrink: float = 0.8,
                      max_shift: float = 0.12) -> CropBox:
        """Pull the box inside an image of (height, width) where a small change allows it.

        Used for photos, where the area outside the picture would be filled with streaks of
        repeated border: the side shrinks to the picture's short side (at most to
        ``max_shrink`` of itself, so the face stays well framed) and the centre moves by at
        most ``max_shift`` of the side towards the picture.
        """
        side = min(self.side, max(float(min(height, width)), self.side * max_shrink))

        def axis(c: float, extent: float) -> float:
            lo, hi = sorted((side / 2, extent - side / 2))
            target = min(max(c, lo), hi)
            limit = max_shift * side
            return c + min(max(target - c, -limit), limit)

        return CropBox(axis(self.cx, width), axis(self.cy, height), side)

    def nudged(self, crop: CropConfig) -> CropBox:
        """Apply the user's zoom (>1 = closer) and offsets (fractions of the side)."""
        zoom = crop.zoom if crop.zoom > 0 else 1.0
        side = self.side / zoom
        return CropBox(self.cx + crop.offset_x * side, self.cy + crop.offset_y * side, side)


def face_size(landmarks: np.ndarray) -> float:
    """Forehead-to-chin extent of a 468-point mesh, or the width-based estimate when larger."""
    p = np.asarray(landmarks, np.float64)
    height = float(np.linalg.norm(p[FOREHEAD] - p[CHIN]))
    width = float(np.linalg.norm(p[CHEEK_RIGHT] - p[CHEEK_LEFT]))
    return max(height, OVAL_ASPECT * width)


def crop_box_for_landmarks(landmarks: np.ndarray) -> CropBox:
    """The automatic VoxCeleb-style square box for a 468-point mesh in image px (no nudges)."""
    p = np.asarray(landmarks, np.float64)
    side = max(face_size(p) / FACE_FRACTION, 1.0)
    centre = (p[FOREHEAD] + p[CHIN]) / 2
    return CropBox(float(centre[0]), float(centre[1] + CENTRE_DROP * side), float(side))


def to_size(image: np.ndarray, landmarks: np.ndarray | None, size: int) -> tuple[np.ndarray, np.ndarray | None]:
    """A square crop (and its landmarks in its px) scaled to ``size`` x ``size``."""
    if image.shape[0] == size and image.shape[1] == size:
        return image, landmarks
    scaled = None
    if landmarks is not None:
        scaled = (np.asarray(landmarks, np.float32) * np.float32(size / image.shape[1])).astype(np.float32)
    return resize(image, (size, size)), scaled


def recrop(image: np.ndarray, box: CropBox | None, crop: np.ndarray, landmarks: np.ndarray | None,
           size: int) -> tuple[np.ndarray, np.ndarray | None]:
    """``crop`` (cut from ``image`` by ``box``) at ``size``: cut from ``image`` again when that is
    larger than the crop (no enlarged crop: an engine taking 512 px gets the picture's own
    detail), else resized. Landmarks follow, in the new crop's px."""
    side = crop.shape[0]
    if size <= side or box is None:
        return to_size(crop, landmarks, size)
    scaled = None if landmarks is None else (np.asarray(landmarks, np.float32) * np.float32(size / side))
    return np.ascontiguousarray(box.extract(image, size)), None if scaled is None else scaled.astype(np.float32)


def sharp_face(image: np.ndarray, aligned, max_side: int = 1024) -> tuple[np.ndarray, np.ndarray | None]:
    """An aligned portrait (``AlignedFace``) cut again from ``image`` at the photo's own
    resolution: the box's side in px, at least the aligner's size, at most ``max_side``.
    ``image`` must be the picture it was aligned on (else the aligner's crop is returned)."""
    crop, box = aligned.image, getattr(aligned, "box", None)
    if box is None or tuple(getattr(aligned, "full_shape", image.shape[:2])) != tuple(image.shape[:2]):
        return crop, aligned.landmarks
    target = min(max(round(box.side), crop.shape[0]), max_side)
    return recrop(image, box, crop, aligned.landmarks, target)
