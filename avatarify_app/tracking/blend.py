"""Paste an animated crop back into the full-resolution portrait with a feathered edge."""

from __future__ import annotations

import math

import cv2
import numpy as np

from avatarify_app.frames import check_frame
from avatarify_app.tracking.crop import CropBox

FEATHER = 0.12
"""Width of the blend ramp at the crop's edges, as a fraction of the crop side."""


def _ramp(n: int, feather_px: float, keep_low: bool, keep_high: bool) -> np.ndarray:
    """1-D weights over n crop px: 0 -> 1 over ``feather_px`` at each end (smoothstep), unless kept."""
    u = np.arange(n, dtype=np.float32) + 0.5
    f = max(feather_px, 1.0)
    lo = np.ones(n, np.float32) if keep_low else np.clip(u / f, 0, 1)
    hi = np.ones(n, np.float32) if keep_high else np.clip((n - u) / f, 0, 1)
    w = np.minimum(lo, hi)
    return w * w * (3 - 2 * w)


def paste_back(full: np.ndarray, crop: np.ndarray, box: CropBox) -> np.ndarray:
    """``full`` with ``crop`` (the animated version of ``box``'s region) blended in; a new frame.

    The crop is resized to the box (sub-pixel exact, inverse of ``CropBox.extract``) and
    blended with weights that fall smoothly to zero over ``FEATHER`` of the side at each crop
    edge that lies inside the picture (edges past the picture's border need no seam).
    """
    check_frame(full, "full")
    check_frame(crop, "crop")
    if crop.shape[0] != crop.shape[1]:
        raise ValueError(f"crop must be square, got {crop.shape}")
    h, w = full.shape[:2]
    n = crop.shape[0]
    # Image region the box covers.
    x0, y0 = max(math.floor(box.x0), 0), max(math.floor(box.y0), 0)
    x1, y1 = min(math.ceil(box.x0 + box.side), w), min(math.ceil(box.y0 + box.side), h)
    out = full.copy()
    if x1 <= x0 or y1 <= y0:
        return out
    feather = FEATHER * n
    wx = _ramp(n, feather, keep_low=box.x0 <= 0, keep_high=box.x0 + box.side >= w)
    wy = _ramp(n, feather, keep_low=box.y0 <= 0, keep_high=box.y0 + box.side >= h)
    weights = np.outer(wy, wx)
    # region px (x, y) -> crop px u = (x0 + x - box.x0) * n / side
    s = n / box.side
    m = np.array([[s, 0.0, (x0 - box.x0) * s], [0.0, s, (y0 - box.y0) * s]], np.float64)
    size = (x1 - x0, y1 - y0)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    # Shrinking the crop (box smaller than the crop): area-filter first.
    src = crop
    if box.side < n / 1.5:
        side = max(1, round(box.side))
        src = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
        weights = cv2.resize(weights, (side, side), interpolation=cv2.INTER_AREA)
        k = side / n
        m = np.array([[s * k, 0.0, (x0 - box.x0) * s * k], [0.0, s * k, (y0 - box.y0) * s * k]], np.float64)
    warped = cv2.warpAffine(src, m, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(weights, m, size, flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    alpha = np.clip(alpha, 0.0, 1.0)[:, :, None]
    region = out[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = np.clip(region + (warped.astype(np.float32) - region) * alpha + 0.5, 0, 255).astype(np.uint8)
    return out
