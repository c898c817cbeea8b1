"""The reference (the driving face that means "no motion"): setting, clearing, auto-calibration.

Runs on the inference thread. Every set and clear is announced to the reference observers
with a ``ReferenceEvent`` (see ``session.py``'s docstring for the reasons).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from avatarify_app.errors import EngineError
from avatarify_app.pipeline.events import ReferenceEvent
from avatarify_app.tracking.crop import to_size

log = logging.getLogger(__name__)


@dataclass
class Calibration:
    """An auto-calibration in progress: the best-matching face frame so far."""

    frames_left: int
    request: int
    best_score: float = -1.0
    best: tuple[np.ndarray, np.ndarray | None] | None = None


class ReferenceKeeper:
    """``Session``'s reference handling (a mixin: it works on the session's own state)."""

    def _announce_reference(self, reason: str, request: int | None, score: float | None = None) -> None:
        ref = self._reference
        crop = lms = None
        if ref is not None:
            crop = np.array(ref[0], copy=True)
            lms = None if ref[1] is None else np.array(ref[1], np.float32, copy=True)
        event = ReferenceEvent(crop, lms, reason, request, bool(self._applied.mirror), score)
        self._observers.notify("reference", event)

    def _apply_recalibrate(self, reason: str = "recalibrate", request: int | None = None) -> None:
        """Clear the reference: the next face frame becomes the new one (announced with ``reason``)."""
        self._calibration = None
        self._reference = None
        self._next_reference = (reason, request)
        if self._engine is not None:
            try:
                self._engine.set_reference(None)
            except Exception as err:
                self._report("engine", err)
        self._announce_reference(reason, request)

    def _apply_reference(self, crop: np.ndarray, landmarks: np.ndarray | None, reason: str,
                         request: int | None, score: float | None = None) -> None:
        self._calibration = None
        if self._engine is not None:
            try:
                image, lms = to_size(crop, landmarks, self._engine.size)
                self._engine.set_reference(image, lms)
            except Exception as err:
                self._report("engine", err)
                return
        self._reference = (crop, landmarks)
        self._next_reference = ("first_frame", None)
        self._announce_reference(reason, request, score)

    def _start_calibration(self, n_frames: int, request: int) -> None:
        if self._avatar is None or self._avatar.landmarks is None:
            self._report("avatar", EngineError("Auto-calibration needs an avatar with a detected face.",
                                               "Choose an avatar first, or use calibrate."))
            return
        self._calibration = Calibration(n_frames, request)

    def _calibrate_step(self, crop: np.ndarray, lms: np.ndarray | None, score: float | None) -> None:
        cal = self._calibration
        if score is not None and score > cal.best_score:
            cal.best_score, cal.best = score, (crop.copy(), None if lms is None else lms.copy())
        cal.frames_left -= 1
        if cal.frames_left <= 0:
            self._calibration = None
            if cal.best is not None:
                self._apply_reference(*cal.best, "auto", cal.request, cal.best_score)
                log.info("auto-calibration picked a reference with pose match %.3f", cal.best_score)
            else:
                self._report("tracking", EngineError(
                    "Auto-calibration found no frame it could compare with the avatar.",
                    "Face the camera in good light and try again, or use calibrate."))

    def _take_first_reference(self, crop: np.ndarray, lms: np.ndarray | None, score: float | None) -> None:
        """The engine took this frame as its reference (it had none): keep a copy and announce it."""
        self._reference = (crop.copy(), None if lms is None else np.array(lms, copy=True))
        (reason, request), self._next_reference = self._next_reference, ("first_frame", None)
        self._announce_reference(reason, request, score)
