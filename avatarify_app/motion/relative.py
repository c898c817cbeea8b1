"""Relative motion transfer (the FOMM authors' demo, paper Sec. 4 "relative motion transfer").

The source takes the *displacement* of the driving keypoints since a reference driving frame,
not their absolute positions, so an avatar keeps its own face shape:

    value    = kp_source + (kp_driving - kp_reference) * scale
    jacobian = (J_driving @ J_reference^-1) @ J_source

with scale = sqrt(area(hull(kp_source)) / area(hull(kp_reference))) when adapting the
movement scale (hull of the K points of batch element 0), else 1.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from avatarify_app.models.fomm.geometry import inverse_2x2, matmul_2x2

KpDict = dict[str, torch.Tensor]


def convex_hull_area(points: np.ndarray | torch.Tensor) -> float:
    """Area of the convex hull of Nx2 points (Andrew's monotone chain + shoelace), 0 if degenerate."""
    pts = points.detach().cpu().double().numpy() if isinstance(points, torch.Tensor) else np.asarray(points, float)
    unique = sorted(set(map(tuple, pts.reshape(-1, 2).tolist())))
    if len(unique) < 3:
        return 0.0

    def cross(o, a, b) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[tuple[float, float]] = []
    for p in unique:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list[tuple[float, float]] = []
    for p in reversed(unique):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    hull = lower[:-1] + upper[:-1]
    area = 0.0
    for i, (x0, y0) in enumerate(hull):
        x1, y1 = hull[(i + 1) % len(hull)]
        area += x0 * y1 - x1 * y0
    return abs(area) / 2.0


def movement_scale(kp_source: KpDict, kp_reference: KpDict) -> float:
    """sqrt(hull area of the source keypoints) / sqrt(hull area of the reference's); 1 if degenerate."""
    source_area = convex_hull_area(kp_source["value"][0])
    reference_area = convex_hull_area(kp_reference["value"][0])
    if reference_area <= 0.0 or source_area <= 0.0:
        return 1.0
    return math.sqrt(source_area) / math.sqrt(reference_area)


def relative_keypoints(kp_source: KpDict, kp_driving: KpDict, kp_driving_initial: KpDict, *,
                       adapt_movement_scale: bool = False, use_relative_movement: bool = True,
                       use_relative_jacobian: bool = True) -> KpDict:
    """Keypoints to drive the source with (values BxKx2, Jacobians BxKx2x2)."""
    out = dict(kp_driving)
    if not use_relative_movement:
        return out
    scale = movement_scale(kp_source, kp_driving_initial) if adapt_movement_scale else 1.0
    out["value"] = (kp_driving["value"] - kp_driving_initial["value"]) * scale + kp_source["value"]
    if use_relative_jacobian and "jacobian" in kp_driving:
        ratio = matmul_2x2(kp_driving["jacobian"], inverse_2x2(kp_driving_initial["jacobian"]))
        out["jacobian"] = matmul_2x2(ratio, kp_source["jacobian"])
    return out


def relative_transform(kp_source: KpDict, kp_reference: KpDict | None, *, relative: bool = True,
                       adapt_movement_scale: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The same mapping as ``relative_keypoints`` written as an affine map of the driving keypoints.

    Returns (scale (1,), offset BxKx2, right BxKx2x2) such that value = scale * kp_driving + offset
    and jacobian = J_driving @ right. Absolute motion (or no reference) is scale 1, offset 0 and
    right = I. Computed once per source/reference, so the per-frame graph takes them as inputs.
    """
    value = kp_source["value"]
    b, k = value.shape[:2]
    eye = torch.eye(2, dtype=value.dtype, device=value.device).expand(b, k, 2, 2).contiguous()
    if not relative or kp_reference is None:
        return torch.ones(1, dtype=value.dtype, device=value.device), torch.zeros_like(value), eye
    s = movement_scale(kp_source, kp_reference) if adapt_movement_scale else 1.0
    scale = torch.full((1,), s, dtype=value.dtype, device=value.device)
    offset = value - kp_reference["value"] * scale
    right = eye
    if "jacobian" in kp_reference and "jacobian" in kp_source:
        right = matmul_2x2(inverse_2x2(kp_reference["jacobian"]), kp_source["jacobian"])
    return scale, offset, right
