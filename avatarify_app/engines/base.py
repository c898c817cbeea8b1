"""The engine protocol: what the live pipeline, the CLI and the GUI ask of an animator.

An engine animates a *source* face crop (the avatar) with the motion of *driving* face
crops (camera frames), relative to a *reference* driving crop (calibration).
All images are frames (uint8 HxWx3 RGB, C-contiguous) of ``size`` x ``size`` pixels:
aligned face crops produced by ``avatarify_app.tracking``. ``landmarks`` are optional
(N, 2) float32 arrays of face-mesh points in the crop's pixel coordinates (mediapipe's
468-point mesh); an engine that needs them and gets None finds them itself.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from avatarify_app.config import MotionOptions


@runtime_checkable
class Engine(Protocol):
    """What every engine implements. Optional extras an engine may also have (callers use
    ``getattr``): ``timings() -> dict[str, float]`` (ms per stage of the last ``predict``, for
    ``bench`` and the live stats) and ``set_controls(values: dict)`` (its live options, see
    ``EngineOption.live``, changed while it runs)."""

    name: str  # its registry name
    device: str  # what really runs it, e.g. "cpu", "cuda:0 NVIDIA H100 (fp16)"
    size: int  # side of the square crops it takes and returns

    def set_source(self, image: np.ndarray, landmarks: np.ndarray | None = None) -> None:
        """Set the avatar; cache everything that depends on it alone. Raises NoFaceError/BadImageError."""

    def set_reference(self, image: np.ndarray | None, landmarks: np.ndarray | None = None) -> None:
        """Set the reference driving frame; None resets so the next predicted frame becomes it."""

    def has_reference(self) -> bool:
        """True once a reference driving frame is set."""

    def set_options(self, options: MotionOptions) -> None:
        """Relative/absolute motion and adapt-movement-scale, effective from the next frame."""

    def predict(self, image: np.ndarray, landmarks: np.ndarray | None = None) -> np.ndarray:
        """Animate the source with one driving crop; returns a size x size frame."""

    def debug_info(self) -> dict[str, np.ndarray]:
        """Arrays of the last prediction for the debug view (keypoints in crop pixels,
        occlusion map in [0, 1], flow as HxWx2 pixel offsets); empty when not available."""

    def close(self) -> None:
        """Release the device and any runtime sessions."""
