"""The reference-keeper part of a session: the ONE holder of the reference (the driving face
that means "no motion"), auto-calibration, and (opt-in) the calibrations saved per avatar.

Runs on the inference thread; ``reference`` is safe to read from any thread. The engine
the reference goes to and the camera orientation are passed into each call. Every set and
clear is announced with a ``ReferenceEvent`` (see ``session.py``'s docstring for the reasons).

Auto-calibration keeps the best pose match over its frames and accepts it only at or above
``min_match`` (``tracking.pose.CALIBRATION_MIN_MATCH``). Below it the previous reference
stays (with none yet, the best frame becomes the implicit one, reason "first_frame") and the
error observers hear the match and which way to move (``tracking.pose.pose_hint``).

With ``saved=True`` the keeper uses ``avatar_store``: when the avatar is a file with a
calibration saved for it and the current orientation, that one is applied (reason "saved");
references the user sets (recalibrate, an accepted auto-calibration, set_reference) are saved.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avatarify_app.errors import EngineError
from avatarify_app.pipeline import avatar_store
from avatarify_app.pipeline.events import ReferenceEvent
from avatarify_app.tracking.crop import to_size
from avatarify_app.tracking.pose import CALIBRATION_MIN_MATCH, EXPRESSION_HINT

log = logging.getLogger(__name__)

Reference = tuple[np.ndarray, np.ndarray | None]
SAVED_REASONS = ("recalibrate", "auto", "set")  # references the user asked for: kept per avatar


@dataclass
class AutoCalibration:
    """An auto-calibration in progress: the best-matching face frame so far."""

    frames_left: int
    request: int
    best_score: float = -1.0
    best: Reference | None = None
    best_hint: str | None = None


class ReferenceKeeper:
    """Owns the reference, the reason the next implicit one will carry, a running
    auto-calibration and the avatar file whose saved calibrations it uses."""

    def __init__(self, announce: Callable[[ReferenceEvent], None], report: Callable[..., bool], *,
                 saved: bool = False, min_match: float = CALIBRATION_MIN_MATCH) -> None:
        self._announce = announce
        self._report = report
        self._saved = saved
        self.min_match = min_match
        self._reference: Reference | None = None
        self._next: tuple[str, int | None] = ("first_frame", None)  # for the engine's implicit pick
        self._auto: AutoCalibration | None = None
        self._avatar_path: Path | None = None

    # ------------------------------------------------------------------ queries
    @property
    def reference(self) -> Reference | None:
        return self._reference

    @property
    def calibrating(self) -> bool:
        return self._auto is not None

    @property
    def uses_saved(self) -> bool:
        return self._saved

    # ------------------------------------------- commands (inference thread only)
    def clear(self, reason: str, request: int | None, engine: Any, mirror: bool) -> None:
        """Forget the reference: the engine's next face frame becomes it (announced with ``reason``)."""
        self._auto = None
        self._reference = None
        self._next = (reason, request)
        if engine is not None:
            try:
                engine.set_reference(None)
            except Exception as err:
                self._report("engine", err, key="set_reference")
        self._tell(reason, request, mirror)

    def set(self, crop: np.ndarray, landmarks: np.ndarray | None, reason: str, request: int | None,
            engine: Any, mirror: bool, score: float | None = None) -> bool:
        """Use this driving crop (and its crop-px landmarks) as the reference; False (reported)
        when the engine refuses it."""
        self._auto = None
        if engine is not None:
            try:
                engine.set_reference(*to_size(crop, landmarks, engine.size))
            except Exception as err:
                self._report("engine", err, key="set_reference")
                return False
        self._reference = (crop, landmarks)
        self._next = ("first_frame", None)
        if reason in SAVED_REASONS:
            self._save(mirror)  # before the announcement: a listener may read the file
        self._tell(reason, request, mirror, score)
        return True

    def start_auto(self, n_frames: int, request: int, comparable: bool) -> None:
        """Pick the best pose match among the next ``n_frames`` face frames (``comparable``:
        the avatar has landmarks to compare with)."""
        if not comparable:
            self._report("avatar", EngineError("Auto-calibration needs an avatar with a detected face.",
                                               "Choose an avatar first, or use calibrate."),
                         key="auto_no_avatar", request=request)
            return
        self._auto = AutoCalibration(max(1, int(n_frames)), request)

    def auto_step(self, crop: np.ndarray, lms: np.ndarray | None, score: float | None, hint: str | None,
                  engine: Any, mirror: bool) -> None:
        """One face frame of a running auto-calibration (its pose match ``score`` and ``hint``)."""
        cal = self._auto
        if cal is None:
            return
        if score is not None and score > cal.best_score:
            cal.best_score, cal.best = score, (crop.copy(), None if lms is None else lms.copy())
            cal.best_hint = hint
        cal.frames_left -= 1
        if cal.frames_left > 0:
            return
        self._auto = None
        if cal.best is None:
            self._report("calibration", EngineError(
                "Auto-calibration found no frame it could compare with the avatar.",
                "Face the camera in good light and try again, or use calibrate."),
                key="auto_none", request=cal.request)
        elif cal.best_score >= self.min_match:
            if self.set(*cal.best, "auto", cal.request, engine, mirror, cal.best_score):
                log.info("auto-calibration picked a reference with pose match %.3f", cal.best_score)
        else:
            self._reject(cal, engine, mirror)

    def engine_took(self, crop: np.ndarray, lms: np.ndarray | None, score: float | None, mirror: bool) -> None:
        """The engine took this frame as its reference (it had none): keep a copy and announce it."""
        self._reference = (crop.copy(), None if lms is None else np.array(lms, copy=True))
        (reason, request), self._next = self._next, ("first_frame", None)
        if reason in SAVED_REASONS:
            self._save(mirror)
        self._tell(reason, request, mirror, score)

    def avatar_changed(self, path: Path | None, engine: Any, mirror: bool) -> None:
        """A new avatar (``path``: its file, None for an array): apply its saved calibration."""
        self._avatar_path = path
        self._restore(engine, mirror)

    def mirror_changed(self, engine: Any, mirror: bool) -> None:
        """The picture flipped: a reference is a face seen one way round (its mesh landmarks do
        not flip with it), so it is cleared; the one saved for this orientation comes back."""
        self.clear("mirror", None, engine, mirror)
        self._restore(engine, mirror)

    # ------------------------------------------------------------------ helpers
    def _tell(self, reason: str, request: int | None, mirror: bool, score: float | None = None) -> None:
        ref = self._reference
        crop = lms = None
        if ref is not None:
            crop = np.array(ref[0], copy=True)
            lms = None if ref[1] is None else np.array(ref[1], np.float32, copy=True)
        self._announce(ReferenceEvent(crop, lms, reason, request, bool(mirror), score))

    def _reject(self, cal: AutoCalibration, engine: Any, mirror: bool) -> None:
        kept = self._reference is not None
        if not kept:  # nothing to keep: the best frame beats whichever face comes next
            self.set(*cal.best, "first_frame", None, engine, mirror, cal.best_score)
        hint = cal.best_hint or EXPRESSION_HINT
        what = ("kept the previous calibration" if kept
                else "the best of its frames is used until you calibrate")
        log.info("auto-calibration rejected: pose match %.3f < %.3f (%s)", cal.best_score, self.min_match, hint)
        self._report("calibration", EngineError(
            f"Auto-calibration: the best pose match was {100 * cal.best_score:.0f}%, below the "
            f"{100 * self.min_match:.0f}% it needs; {what}.",
            f"To match the portrait: {hint}. Then try again, or use calibrate."),
            key="auto_rejected", request=cal.request)

    def _restore(self, engine: Any, mirror: bool) -> None:
        if not self._saved or self._avatar_path is None:
            return
        saved = avatar_store.load_calibration(self._avatar_path, mirror=mirror)
        if saved is not None:
            self.set(*saved, "saved", None, engine, mirror)
            log.info("applied the calibration saved for %s%s", self._avatar_path.name,
                     " (mirrored camera)" if mirror else "")

    def _save(self, mirror: bool) -> None:
        if not self._saved or self._avatar_path is None or self._reference is None:
            return
        try:
            avatar_store.save_calibration(self._avatar_path, *self._reference, mirror=mirror)
        except OSError as err:
            self._report("calibration", err, key="save")
