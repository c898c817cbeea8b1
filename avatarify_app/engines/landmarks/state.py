"""What the landmark engine keeps between frames, and what one frame's motion is.

``SourceState`` depends on the avatar alone (``LandmarkEngine.set_source``),
``ReferenceState`` on the (avatar, reference) pair (``set_reference``), ``FrameMotion`` is
one driving frame's keypoint motion on the source (the first step of ``predict``).
Points are crop px (float64); Jacobians 2x2; affines the 6-vectors of ``motion.backward_affines``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from avatarify_app.engines.landmarks import motion as lm
from avatarify_app.engines.landmarks import scene as ls


@dataclass(frozen=True)
class SourceState:
    """The avatar: its landmarks, keypoint groups, layers and what its openings look like."""

    landmarks: np.ndarray  # (468, 2)
    names: list[str]  # keypoint group names, in keypoint order
    idx: np.ndarray  # (K, G) landmark indices per group (padded)
    mask: np.ndarray  # (K, G) which of ``idx`` are real
    kp: np.ndarray  # (K, 2) group centroids
    sigma: np.ndarray  # (K,) Gaussian sigma per keypoint
    centre: np.ndarray  # (2,) mean landmark (the head keypoint)
    face_size: float  # sqrt of the face oval's area
    body: np.ndarray  # (2,) the body keypoint below the face
    mouth: np.ndarray  # opening axes (motion.opening_axis) of the mouth ...
    reye: np.ndarray  # ... the right eye ...
    leye: np.ndarray  # ... and the left eye
    eyes: list[float]  # openness of the right and left eye (lids.openness)
    lids: list  # per eye a lids.prepare() result, or None without blinking
    image_x: np.ndarray  # the image extended past the crop's edge (what the warp samples)
    border_w: np.ndarray  # (r, r) background weight at the border, less where the person reaches it
    alpha: np.ndarray | None  # extended person alpha (layered mode), else None
    plate: np.ndarray | None  # extended background plate (person inpainted) ...
    plate_in: np.ndarray | None  # ... and the plate at crop size

    def axis(self, key: str) -> np.ndarray:
        return {"mouth": self.mouth, "reye": self.reye, "leye": self.leye}[key]


@dataclass
class ReferenceState:
    """The reference driving face and what depends on it together with the source."""

    landmarks: np.ndarray  # (468, 2) of the reference crop
    image: np.ndarray | None  # the reference crop (None when only landmarks were given)
    to_source: lm.Similarity | None = None  # aligns the reference face to the source face
    kp: np.ndarray | None = None  # (K, 2) the source's groups on the reference landmarks
    eyes: list[float] = field(default_factory=list)  # reference eye openness
    motion: ls.DrivingMotion | None = None  # body/background flow against the reference image


@dataclass(frozen=True)
class FrameMotion:
    """One driving frame's motion on the source (before the body, openings and background)."""

    kp_driving: np.ndarray  # (K, 2) keypoints of the driving frame
    head: lm.Similarity  # head motion reference -> driving
    kp_new: np.ndarray  # (K, 2) where the source keypoints go
    J_new: np.ndarray  # (K, 2, 2) their Jacobians
    head_new: np.ndarray  # (2,) where the head keypoint goes ...
    head_J: np.ndarray  # (2, 2) ... with this Jacobian
    target: np.ndarray  # (468, 2) the source landmarks moved: where every mesh point goes
