"""Results of the tracker (see docs/CONTRACTS.md, "tracking")."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatarify_app.tracking.crop import CropBox

N_LANDMARKS = 468


@dataclass(frozen=True, eq=False)
class Face:
    """One face in image px.

    box:         float32 (4,) x0, y0, x1, y1 (detector box, or the mesh's extent when tracking).
    landmarks:   float32 (468, 2) mediapipe face-mesh order, or None.
    score:       detector confidence in [0, 1]; 1.0 for a face followed by mesh tracking.
    landmarks68: float32 (68, 2) iBUG-68 points from the optional face_alignment back-end, or None.
    """

    box: np.ndarray
    landmarks: np.ndarray | None
    score: float
    landmarks68: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class AlignedFace:
    """A portrait framed for the engines: ``image`` (size x size frame), ``landmarks`` (468, 2)
    float32 crop px, ``box`` in the original's px, ``full_shape`` (H, W) of the original,
    ``face`` as found in the original.

    ``notes``: what the user should know about this portrait, one sentence each (it was scaled
    down or flattened on load, which of several faces is animated, the face is so small that
    the animation will look blurry). Already logged; the command line prints them and the
    desktop app shows them in its status bar."""

    image: np.ndarray
    landmarks: np.ndarray
    box: CropBox
    full_shape: tuple[int, int]
    face: Face | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class TrackResult:
    """One tracked stream frame: ``face`` (image px), smoothed ``box``, the ``crop`` frame and
    the raw (unsmoothed) ``landmarks`` (468, 2) float32 in crop px."""

    face: Face
    box: CropBox
    crop: np.ndarray
    landmarks: np.ndarray
