"""Optional face_alignment (FAN, Bulat & Tzimiropoulos 2017) 68-point landmarks.

Used only when ``TrackingConfig.backend == "face_alignment"`` and the 2DFAN-4 weights are
already in torch's hub cache, where face_alignment itself would keep them
(``torch.hub.get_dir()/checkpoints/2DFAN4-11f355bf06.pth.tar``). Nothing is ever downloaded:
when the file is missing we log where to put it and the caller keeps mediapipe.

Faces are found by mediapipe and handed to FAN as boxes, so face_alignment's own detector
(s3fd) and its weights are not needed. FAN's 68 points go to ``Face.landmarks68``; the
468-point mesh (the contract's ``landmarks``) and the crop framing still come from mediapipe.
torch and face_alignment are imported only here, and only when this back-end is asked for.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

log = logging.getLogger(__name__)

FAN_KEY = "2DFAN-4"
FAN_FILE_FALLBACK = "2DFAN4-11f355bf06.pth.tar"


def fan_weights_path() -> Path:
    """Where face_alignment keeps (and would download) the 2DFAN-4 weights."""
    import torch.hub

    try:
        from face_alignment.api import models_urls

        name = os.path.basename(urlparse(models_urls[FAN_KEY]).path) or FAN_FILE_FALLBACK
    except (ImportError, KeyError):
        name = FAN_FILE_FALLBACK
    return Path(torch.hub.get_dir()) / "checkpoints" / name


class FanLandmarks:
    """68-point FAN on CPU (or ``device``), fed with boxes from mediapipe."""

    def __init__(self, device: str = "cpu") -> None:
        import face_alignment

        path = fan_weights_path()
        if not path.is_file():  # face_alignment would download it; we never do
            raise FileNotFoundError(path)
        self._fa = face_alignment.FaceAlignment(
            face_alignment.LandmarksType.TWO_D,
            device=device,
            flip_input=False,
            face_detector="folder",  # boxes come from us; no detector weights needed
            compile=False,
        )

    @classmethod
    def if_available(cls, device: str = "cpu") -> FanLandmarks | None:
        """The back-end, or None (with a warning saying where the weights go) when they are missing."""
        try:
            path = fan_weights_path()
        except ImportError as exc:
            log.warning("face_alignment back-end unavailable (%s); using mediapipe.", exc)
            return None
        if not path.is_file():
            log.warning(
                "face_alignment weights not found at %s; using mediapipe landmarks instead. "
                "To use face_alignment, put %s there (set TORCH_HOME to choose the folder). "
                "The app never downloads them.",
                path, path.name,
            )
            return None
        return cls(device)

    def landmarks68(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        """(68, 2) float32 image px for the face in ``box`` (x0, y0, x1, y1), or None."""
        import torch

        with torch.inference_mode():
            out = self._fa.get_landmarks_from_image(frame, detected_faces=[np.asarray(box, np.float32)])
        if not out:
            return None
        pts = np.asarray(out[0], np.float32)[:, :2]
        return pts if pts.shape == (68, 2) and np.all(np.isfinite(pts)) else None

    def close(self) -> None:
        self._fa = None
