"""Eye- and lip-open ratios in the LivePortrait authors' conventions, from our 468-point mesh.

The retargeting networks read open ratios the authors measure on their own 203-point
landmarks (``calc_eye_close_ratio`` / ``calc_lip_close_ratio``): per eye, the distance
between the middles of the upper and lower lid over the distance between the eye's corners
(their points 6-18 over 0-12, and 30-42 over 24-36); for the lips, the gap between the middles
of the inner upper and inner lower lip over the distance between the mouth corners (90-102
over 48-66). The same distances on mediapipe's mesh:

    eye, image-left (subject's right): |159 - 145| / |33 - 133|
    eye, image-right (subject's left): |386 - 374| / |362 - 263|
    lips:                              |13 - 14|   / |61 - 291|

The authors' first eye (points 0-23) is the one on the image's left: their crop code builds
the x axis from it towards the second. The raw mesh ratios are then mapped onto the authors'
ranges, measured on real faces (``scripts/lp_ratio_ranges.py`` prints both):

- Eyes. Open eyes agree (mesh median 0.32 on the authors' twelve driving videos, 6,866 eye
  samples; their ratios in their five motion templates: median of open eyes 0.29, 25-75% 0.24-0.33),
  but the mesh (without iris refinement) never closes the lids: blinks bottom out at 0.14-0.17,
  where the authors' landmarks give 0.003-0.02. So ``eye = max(0, mesh - 0.15) * 1.7``: a closed
  eye maps to 0 and a typical open one (0.32) to 0.29.
- Lips. The ranges agree (open mouths up to 0.5-0.6 in both); a closed mouth reads 0.005-0.045
  on the mesh (0.02 on the closed-mouth portraits of the shared media and most of the authors'
  examples) where theirs reads 0.001-0.007, below their 0.03 "closed" threshold
  (``lip_normalize_threshold``). So ``lip = max(0, mesh - 0.02)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# mediapipe mesh points playing the roles of the authors' 203-point landmarks
EYE_IMAGE_LEFT = (159, 145, 33, 133)  # lid middles (their 6, 18), corners (0, 12)
EYE_IMAGE_RIGHT = (386, 374, 362, 263)  # (their 30, 42), (24, 36)
LIPS = (13, 14, 61, 291)  # inner lip middles (their 90, 102), mouth corners (48, 66)

EYE_MESH_CLOSED = 0.15
"""Mesh eye ratio of a closed eye (the mesh's lids stop short of each other)."""
EYE_GAIN = 1.7
"""Scale from the mesh's eye ratio above closed to the authors' ratio."""
LIP_MESH_CLOSED = 0.02
"""Mesh lip ratio of a closed mouth."""


@dataclass(frozen=True)
class OpenRatios:
    """Open ratios in the authors' conventions: eyes (image-left, image-right) and lips."""

    eye_left: float
    eye_right: float
    lip: float

    @property
    def eyes(self) -> float:
        """Both eyes as one target (their mean)."""
        return 0.5 * (self.eye_left + self.eye_right)


def _ratio(p: np.ndarray, a: int, b: int, c: int, d: int, eps: float = 1e-6) -> float:
    return float(np.linalg.norm(p[a] - p[b]) / (np.linalg.norm(p[c] - p[d]) + eps))


def mesh_ratios(landmarks: np.ndarray) -> tuple[float, float, float]:
    """The raw mesh ratios (eye image-left, eye image-right, lips) of a (468, 2) mesh."""
    p = np.asarray(landmarks, np.float64)
    if p.ndim != 2 or p.shape[0] < 468 or p.shape[1] < 2:
        raise ValueError(f"expected (468, 2) mesh landmarks, got {p.shape}")
    return _ratio(p, *EYE_IMAGE_LEFT), _ratio(p, *EYE_IMAGE_RIGHT), _ratio(p, *LIPS)


def eye_from_mesh(value: float) -> float:
    return max(0.0, value - EYE_MESH_CLOSED) * EYE_GAIN


def lip_from_mesh(value: float) -> float:
    return max(0.0, value - LIP_MESH_CLOSED)


def open_ratios(landmarks: np.ndarray) -> OpenRatios:
    """The authors' eye and lip open ratios for a face, from its (468, 2) mesh (any pixel scale)."""
    left, right, lip = mesh_ratios(landmarks)
    return OpenRatios(eye_from_mesh(left), eye_from_mesh(right), lip_from_mesh(lip))
