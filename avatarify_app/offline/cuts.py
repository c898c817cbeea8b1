"""Scene cuts in a stream of frames: where a driving video jumps to another shot."""

from __future__ import annotations

import numpy as np

CUT_THRESHOLD = 12.0  # mean abs difference (0-255) of 64x48 thumbnails that marks a scene cut


class CutDetector:
    """Scene cuts in a stream of frames: consecutive 64x48 thumbnails that differ by more than
    ``threshold`` (mean absolute difference, 0-255)."""

    def __init__(self, threshold: float = CUT_THRESHOLD) -> None:
        self.threshold = threshold
        self._prev: np.ndarray | None = None

    def is_cut(self, frame: np.ndarray) -> bool:
        """True when ``frame`` starts a new shot (never for the first frame)."""
        import cv2

        thumb = cv2.resize(frame, (64, 48), interpolation=cv2.INTER_AREA).astype(np.float32)
        prev, self._prev = self._prev, thumb
        return prev is not None and float(np.abs(thumb - prev).mean()) > self.threshold
