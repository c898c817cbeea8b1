"""How closely two faces share head pose and expression (the calibration meter)."""

from __future__ import annotations

import math

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
