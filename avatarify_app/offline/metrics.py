"""Reconstruction metrics of the FOMM paper (Sec. 4.1), as far as this program can compute them.

- L1: mean absolute difference of generated and real frames, pixels in [0, 1].
- AKD (average keypoint distance): mean distance, in px of a 256 crop, between the
  mediapipe face-mesh landmarks (468 points, static-image mode) of the generated frame and
  of the real one. The paper uses a different landmark detector, so values are comparable
  only between engines measured here.
- MKR (missing keypoint rate): share of frames where the mesh finds a face in the real frame
  but not in the generated one (mediapipe finds all 468 points or none).
- AED needs an identity network trained for re-identification, which we do not ship.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from avatarify_app.tracking.mediapipe_backend import FaceMesh

CROP = 256  # the side of the face crops whole-video work tracks and scores (the paper's 256)
AED_NOTE = "AED (average Euclidean distance of identity embeddings) is not computed: it needs an identity network we do not ship."
AKD_LANDMARKS = "mediapipe face mesh, 468 points, static-image mode"


def l1(generated: np.ndarray, real: np.ndarray) -> float:
    """Mean absolute error of two frames in [0, 1] units."""
    if generated.shape != real.shape:
        raise ValueError(f"frames differ in shape: {generated.shape} vs {real.shape}")
    return float(np.abs(generated.astype(np.float32) - real.astype(np.float32)).mean() / 255.0)


@dataclass
class ReconstructionScore:
    """Accumulates per-frame L1, AKD and MKR."""

    size: int = CROP
    l1_values: list[float] = field(default_factory=list)
    akd_values: list[float] = field(default_factory=list)
    real_faces: int = 0
    missing: int = 0

    def add(self, generated: np.ndarray, real: np.ndarray, probe: FaceMesh | None = None) -> None:
        self.l1_values.append(l1(generated, real))
        if probe is None:
            return
        real_pts = probe.landmarks(real)
        if real_pts is None:
            return
        self.real_faces += 1
        gen_pts = probe.landmarks(generated)
        if gen_pts is None:
            self.missing += 1
            return
        scale = self.size / real.shape[1]
        self.akd_values.append(float(np.linalg.norm(gen_pts - real_pts, axis=1).mean() * scale))

    def summary(self) -> dict[str, object]:
        return {
            "frames": len(self.l1_values),
            "l1": float(np.mean(self.l1_values)) if self.l1_values else None,
            "akd": float(np.mean(self.akd_values)) if self.akd_values else None,
            "mkr": (self.missing / self.real_faces) if self.real_faces else None,
            "akd_landmarks": AKD_LANDMARKS,
            "aed": None,
        }
