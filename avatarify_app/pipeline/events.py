"""What a live session tells its observers: frame, reference and error events, and their vocabularies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

STATUSES = ("ok", "no_face", "passthrough", "no_avatar", "calibrating", "no_engine", "error")
# Where an error happened (ErrorEvent.stage); "calibration": an auto-calibration was rejected.
ERROR_STAGES = ("source", "tracking", "engine", "sink", "avatar", "calibration")
# Why the reference changed (ReferenceEvent.reason); "saved": the calibration saved for this
# avatar and camera orientation (``avatar_store``), applied by a session that uses the store.
REFERENCE_REASONS = ("first_frame", "recalibrate", "auto", "set", "mirror", "saved")


@dataclass(frozen=True)
class FrameEvent:
    """One processed frame (arrays are shared with the sinks: treat them as read-only)."""

    index: int
    t_capture: float
    camera: np.ndarray  # the camera frame, mirrored if asked
    crop: np.ndarray | None  # the driving face crop (engine size) or None
    box: Any  # tracking.CropBox in camera px, or None
    landmarks: np.ndarray | None  # (468, 2) camera px, or None
    output: np.ndarray  # what the sinks got
    status: str
    pose_match: float | None  # avatar vs driving pose in [0, 1]
    debug: dict[str, np.ndarray] = field(default_factory=dict)
    avatar: np.ndarray | None = None  # the aligned avatar crop the engine animates (engine size)
    # While pose_match is below tracking.pose.CALIBRATION_MIN_MATCH: which way to move to
    # match the avatar (tracking.pose.pose_hint, e.g. "turn left, chin up"; left/right as in
    # the preview), or EXPRESSION_HINT when the head pose does not explain it. Else None.
    pose_hint: str | None = None


@dataclass(frozen=True)
class ReferenceEvent:
    """The reference changed (see ``session.py``'s docstring). Arrays are copies owned by the event."""

    crop: np.ndarray | None  # the driving crop now used as the reference; None = cleared
    landmarks: np.ndarray | None  # its landmarks in crop px, or None
    reason: str  # one of REFERENCE_REASONS
    request: int | None  # what recalibrate()/auto_calibrate()/set_reference() returned; None otherwise
    mirror: bool  # whether the camera was mirrored for this reference
    pose_match: float | None = None  # the avatar vs reference pose match, when known


@dataclass(frozen=True)
class ErrorEvent:
    stage: str  # one of ERROR_STAGES
    error: BaseException
    message: str  # what to tell the user
    request: int | None = None  # the request it answers (a rejected auto_calibrate()), else None


def placeholder_frame(text: str, size: int = 256) -> np.ndarray:
    """A neutral dark card with one line of text (what goes out instead of garbage)."""
    frame = np.full((size, size, 3), 32, np.uint8)
    scale = size / 512
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    org = ((size - tw) // 2, (size + th) // 2)
    cv2.putText(frame, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (200, 200, 200), 1, cv2.LINE_AA)
    return frame
