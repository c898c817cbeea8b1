"""How closely two faces share head pose and expression (the calibration meter)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

POSE_TOLERANCE = 0.15
"""RMS landmark distance (in units of the face's RMS radius) at which the match is 1/e."""


def _normalise(points: np.ndarray) -> np.ndarray | None:
    """Centred and scaled to unit RMS radius; None when all points coincide."""
    centred = points - points.mean(axis=0)
    radius = math.sqrt(float(np.mean(np.sum(centred * centred, axis=1))))
    return centred / radius if radius > 1e-9 else None


def pose_distance(landmarks_a: np.ndarray, landmarks_b: np.ndarray) -> float:
    """RMS distance between two landmark sets after removing translation and scale.

    Rotation is deliberately kept: a turned or tilted head is a different pose for calibration.
    A degenerate set (all points at one place) has no pose: distance 0 to an identical array,
    infinity to anything else. Raises ``ValueError`` for mismatched shapes or NaN.
    """
    a = np.asarray(landmarks_a, np.float64)
    b = np.asarray(landmarks_b, np.float64)
    if a.ndim != 2 or a.shape[1] != 2 or a.shape != b.shape or len(a) < 3:
        raise ValueError(f"need two Nx2 landmark sets of the same shape, got {a.shape} and {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("landmarks contain NaN or infinity")
    na, nb = _normalise(a), _normalise(b)
    if na is None or nb is None:
        return 0.0 if np.array_equal(a, b) else math.inf
    diff = na - nb
    return math.sqrt(float(np.mean(np.sum(diff * diff, axis=1))))


def pose_match(landmarks_a: np.ndarray, landmarks_b: np.ndarray) -> float:
    """1.0 = same pose and expression, falling towards 0 as they differ (Gaussian of ``pose_distance``).

    Measured with mediapipe meshes: consecutive frames of a talking face (tracking noise)
    about 0.98; the same face rolled by 5 degrees 0.7, by 10 degrees 0.25, by 20 degrees ~0.
    """
    d = pose_distance(landmarks_a, landmarks_b)
    return float(math.exp(-((d / POSE_TOLERANCE) ** 2)))


# -- which way to move: head pose from a 2D face mesh ------------------------------------
# mediapipe face-mesh indices (the picture's left/right, not the person's)
_EYE_OUTER = (33, 263)  # outer eye corners: picture-left eye, picture-right eye
_CHEEKS = (234, 454)  # face outline at the ears: picture-left, picture-right
_NOSE_TIP = 1
_CHIN = 152


@dataclass(frozen=True)
class HeadPose:
    """A 2D mesh's head pose in picture terms (no camera model: ratios, not true angles).

    roll:  degrees the eye line is turned clockwise on the picture.
    yaw:   where the nose tip sits between the face's two outline points, -1 (at the
           picture-left one: the face turned towards the picture's left) .. +1.
    pitch: where the nose tip sits between the eye line (0) and the chin (1); larger means
           the head is tilted down (chin towards the chest).
    scale: the face's RMS radius as a fraction of the crop side.
    """

    roll: float
    yaw: float
    pitch: float
    scale: float


def head_pose(landmarks: np.ndarray, crop_size: float) -> HeadPose:
    """The ``HeadPose`` of one 468-point mesh in the px of a ``crop_size`` square crop.

    Raises ``ValueError`` for a set that is not a finite (468, 2) mesh or has no extent.
    """
    p = np.asarray(landmarks, np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or len(p) < 468:
        raise ValueError(f"need a (468, 2) face mesh, got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("landmarks contain NaN or infinity")
    left_eye, right_eye = p[_EYE_OUTER[0]], p[_EYE_OUTER[1]]
    dx, dy = right_eye - left_eye
    if math.hypot(dx, dy) < 1e-9:
        raise ValueError("degenerate face mesh (the eyes coincide)")
    roll = math.atan2(dy, dx)
    c, s = math.cos(-roll), math.sin(-roll)
    origin = (left_eye + right_eye) / 2
    q = (p - origin) @ np.array([[c, -s], [s, c]]).T  # eye line horizontal, eyes at y = 0
    left, right = q[_CHEEKS[0], 0], q[_CHEEKS[1], 0]
    nose = q[_NOSE_TIP]
    half = (right - left) / 2
    yaw = (nose[0] - (left + right) / 2) / half if abs(half) > 1e-9 else 0.0
    chin = q[_CHIN, 1]
    pitch = nose[1] / chin if abs(chin) > 1e-9 else 0.0
    centred = p - p.mean(axis=0)
    radius = math.sqrt(float(np.mean(np.sum(centred * centred, axis=1))))
    return HeadPose(math.degrees(roll), float(yaw), float(pitch), radius / float(crop_size))


CALIBRATION_MIN_MATCH = 0.5
"""The pose match an auto-calibration needs before it replaces the reference.

Measured with the mediapipe mesh on 256 px crops (tracking.StreamTracker, align_portrait):
the same person in the same pose scores 0.95-0.99 (the demo clip against the astronaut
portrait it was made from: best frame of each 30-frame window 0.99 at the median); a
different person in a similar pose 0.67-0.78 (Megamind.avi's best frame against the
astronaut and the Mona Lisa, Einstein against the Mona Lisa); clearly different poses score
below 0.4 (a frontal face against the Mona Lisa's turned one 0.22-0.30; 7 degrees of roll
alone about 0.5). The failure that motivated it picked a frame at 0.08.
"""

# How far a HeadPose component may differ before the hint mentions it. Roll in degrees: 4
# alone lowers the match to 0.8 (6 to 0.6). Yaw and pitch in HeadPose units, above what
# tells people apart: frontal faces (the demo clip, the astronaut) lie within 0.05 of each
# other in yaw, while the Mona Lisa's turn is 0.42; pitch spans 0.39-0.45 over four
# portraits of neutral faces. Scale: the ratio of face sizes in their crops.
HINT_LIMITS = {"roll": 4.0, "yaw": 0.12, "pitch": 0.05, "scale": 0.15}

EXPRESSION_HINT = "match the portrait's expression"  # a poor match the head pose does not explain

_DIRECTIONS = {  # (component, driving minus avatar > 0) -> what the driver should do
    ("yaw", True): "turn left", ("yaw", False): "turn right",
    ("roll", True): "tilt left", ("roll", False): "tilt right",
    ("pitch", True): "chin up", ("pitch", False): "chin down",
    ("scale", True): "move back", ("scale", False): "move nearer",
}


def pose_hint(avatar_landmarks: np.ndarray, driving_landmarks: np.ndarray, most: int = 2) -> str | None:
    """Which way the driving face should move to match the avatar's pose, e.g. "turn left,
    chin up" (the ``most`` largest differences beyond ``HINT_LIMITS``, largest first).

    Both meshes are in the px of square crops of the same size. Left and right are the
    camera picture's as the user sees it in the preview (after any mirroring): "turn left"
    turns the face towards the picture's left edge, "tilt left" brings the top of the head
    towards it. "move nearer"/"move back" compare the face's size in its crop (with a
    tracked crop that follows the face, the framing's zoom does the same). None when the
    poses agree within ``HINT_LIMITS`` (a poor match is then the expression's:
    ``EXPRESSION_HINT``) or a mesh carries no pose (not 468 finite points, or degenerate).
    """
    try:
        a = head_pose(avatar_landmarks, 1.0)
        d = head_pose(driving_landmarks, 1.0)
    except ValueError:
        return None
    if a.scale <= 0 or d.scale <= 0:
        return None
    roll = (d.roll - a.roll + 180.0) % 360.0 - 180.0
    diffs = {"roll": roll, "yaw": d.yaw - a.yaw, "pitch": d.pitch - a.pitch,
             "scale": d.scale / a.scale - 1.0}
    over = sorted(((abs(v) / HINT_LIMITS[k], k, v) for k, v in diffs.items() if abs(v) > HINT_LIMITS[k]),
                  reverse=True)
    if not over:
        return None
    return ", ".join(_DIRECTIONS[(k, v > 0)] for _, k, v in over[:most])
