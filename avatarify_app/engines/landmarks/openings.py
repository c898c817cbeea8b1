"""Mouth and eye openings the output shows wider than the source: an interior map each (the
opening's polygon mapped onto the source opening), soft polygon weights on the flow grid, and
the darkening of a newly opened mouth."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from avatarify_app.engines.landmarks import groups as lg
from avatarify_app.engines.landmarks import motion as lm

# (key of SourceState.axis, ring, corners, inner pairs) of each opening.
OPENINGS = (
    ("mouth", lg.MOUTH_INNER_RING, lg.MOUTH_INNER_CORNERS, lg.MOUTH_INNER_PAIRS),
    ("reye", lg.RIGHT_EYE_RING, lg.RIGHT_EYE_CORNERS, lg.RIGHT_EYE_PAIRS),
    ("leye", lg.LEFT_EYE_RING, lg.LEFT_EYE_CORNERS, lg.LEFT_EYE_PAIRS),
)


@dataclass(frozen=True)
class Openings:
    """Extra flow layers for the openings shown wider than the source."""

    weights: list[np.ndarray]  # (r, r) per opening
    affines: list[np.ndarray]  # 6-vector per opening
    mouth_poly: np.ndarray | None  # the output's inner mouth polygon when it opened ...
    mouth_dark: float  # ... and how much to darken it


def polygon_weight(poly: np.ndarray, size: int, res: int) -> np.ndarray:
    """Soft mask on the ``res`` x ``res`` flow grid of a polygon given in crop px."""
    canvas = np.zeros((res, res), np.float32)
    pts = np.round(((poly + 0.5) * (res / size) - 0.5) * 4).astype(np.int32)
    cv2.fillPoly(canvas, [pts], 1.0, lineType=cv2.LINE_AA, shift=2)
    return cv2.GaussianBlur(canvas, (3, 3), 0)


def find_openings(axes: dict[str, np.ndarray], target: np.ndarray, size: int, res: int,
                  region_amp: float, mouth_darken: float) -> Openings:
    """Openings of ``target`` (the moved landmarks) wider than the source's ``axes``."""
    weights, affines, mouth_poly, mouth_dark = [], [], None, 0.0
    for key, ring, corners, pairs in OPENINGS:
        s_axis = axes[key]
        n_axis = lm.opening_axis(target, corners, pairs)
        gain = np.clip((n_axis[3] - s_axis[3]) / max(0.08 * n_axis[2], 1e-6), 0.0, 1.0)
        if gain <= 0.0:
            continue
        poly = target[list(ring)]
        weights.append(polygon_weight(poly, size, res) * (region_amp * gain))
        affines.append(lm.region_affine(s_axis, n_axis))
        if key == "mouth":
            mouth_poly = poly
            mouth_dark = mouth_darken * gain * float(np.clip(1.0 - s_axis[3] / max(n_axis[3], 1e-6), 0, 1))
    return Openings(weights, affines, mouth_poly, mouth_dark)


def darken(out: np.ndarray, poly: np.ndarray, amount: float, size: int) -> np.ndarray:
    """Darken a newly opened mouth's interior (soft polygon mask, only its bounding box)."""
    k = max(3, int(size / 64) | 1)
    x0, y0 = np.floor(poly.min(0)).astype(int) - k
    x1, y1 = np.ceil(poly.max(0)).astype(int) + k + 1
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, size), min(y1, size)
    if x1 <= x0 or y1 <= y0:
        return out
    canvas = np.zeros((y1 - y0, x1 - x0), np.float32)
    pts = np.round((poly - (x0, y0)) * 4).astype(np.int32)
    cv2.fillPoly(canvas, [pts], 1.0, lineType=cv2.LINE_AA, shift=2)
    canvas = cv2.GaussianBlur(canvas, (k, k), 0)
    factor = (1.0 - amount * canvas)[..., None]
    region = out[y0:y1, x0:x1]
    out[y0:y1, x0:x1] = (region * factor).astype(np.uint8)
    return out
