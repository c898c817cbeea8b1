"""LivePortrait's implicit 3D keypoints (Guo et al. 2024, Sec. 3.1-3.2): pure functions from
the motion extractor's output to keypoints, and the stitching / eye / lip retargeting offsets.

The motion extractor gives, per image, canonical keypoints x_c (Nx3), head pose as 66-bin
logits per angle, an expression deformation delta (Nx3), a scale s and a translation t. The
keypoints the warping module sees are (their Eq. 2, row vectors)

    x = s * (x_c R + delta) + t,   t applied to x and y only,

with R built from pitch, yaw and roll in degrees. Bins become degrees as the expectation of
the softmax over 66 bins of 3 degrees, centred at -97.5 + 3 * i.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from avatarify_app.models.liveportrait.convnextv2 import NUM_BINS

BIN_DEGREES = 3.0
BIN_OFFSET = 97.5  # degrees of the bins' expectation that mean "frontal"

Mlp = Callable[[torch.Tensor], torch.Tensor]


def _tensor(value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    return torch.as_tensor(np.asarray(value, dtype=np.float32))


def headpose_to_degrees(pred: torch.Tensor) -> torch.Tensor:
    """Bx66 bin logits -> B degrees (softmax expectation * 3 - 97.5); anything else (angles
    already in degrees, B or Bx1) is returned as it is."""
    pred = _tensor(pred)
    if pred.ndim > 1 and pred.shape[1] == NUM_BINS:
        bins = torch.arange(NUM_BINS, dtype=pred.dtype, device=pred.device)
        return (torch.softmax(pred, dim=1) * bins).sum(dim=1) * BIN_DEGREES - BIN_OFFSET
    return pred


def rotation_matrix(pitch: torch.Tensor, yaw: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """Degrees (B or Bx1 each) -> Bx3x3 R = (R_z(roll) R_y(yaw) R_x(pitch))^T, for row vectors
    (``kp @ R``)."""
    def radians(angle: torch.Tensor) -> torch.Tensor:
        angle = _tensor(angle)
        return (angle.reshape(angle.shape[0], 1) / 180 * math.pi)

    x, y, z = radians(pitch), radians(yaw), radians(roll)
    ones, zeros = torch.ones_like(x), torch.zeros_like(x)
    rot_x = torch.cat([ones, zeros, zeros,
                       zeros, torch.cos(x), -torch.sin(x),
                       zeros, torch.sin(x), torch.cos(x)], dim=1).view(-1, 3, 3)
    rot_y = torch.cat([torch.cos(y), zeros, torch.sin(y),
                       zeros, ones, zeros,
                       -torch.sin(y), zeros, torch.cos(y)], dim=1).view(-1, 3, 3)
    rot_z = torch.cat([torch.cos(z), -torch.sin(z), zeros,
                       torch.sin(z), torch.cos(z), zeros,
                       zeros, zeros, ones], dim=1).view(-1, 3, 3)
    return (rot_z @ rot_y @ rot_x).transpose(1, 2)


def transform_keypoint(kp_info: Mapping[str, Any]) -> torch.Tensor:
    """{'kp', 'exp': Bx3N or BxNx3; 'pitch', 'yaw', 'roll': Bx66 logits or degrees (B or Bx1);
    't': Bx3; 'scale': Bx1} -> BxNx3 keypoints s * (x_c R + delta) + (tx, ty, 0)."""
    kp = _tensor(kp_info["kp"])
    bs = kp.shape[0]
    num_kp = kp.shape[1] // 3 if kp.ndim == 2 else kp.shape[1]
    rot = rotation_matrix(*(headpose_to_degrees(kp_info[k]) for k in ("pitch", "yaw", "roll")))
    exp = _tensor(kp_info["exp"]).reshape(bs, num_kp, 3)
    scale = _tensor(kp_info["scale"]).reshape(bs, 1, 1)
    t = _tensor(kp_info["t"]).reshape(bs, 3)
    x = (kp.reshape(bs, num_kp, 3) @ rot + exp) * scale
    shift = torch.cat([t[:, :2], torch.zeros_like(t[:, 2:])], dim=1)  # z is not translated
    return x + shift[:, None, :]


def _flat_pair(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"batch sizes differ: {a.shape[0]} and {b.shape[0]}")
    return torch.cat([a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)], dim=1)


def stitching_delta(stitching: Mlp, x_s: torch.Tensor, x_d: torch.Tensor) -> torch.Tensor:
    """The stitching MLP on [x_s, x_d] flattened: Bx(3N+2) (N x, y, z offsets, then tx, ty)."""
    return stitching(_flat_pair(x_s, x_d))


def apply_stitching(stitching: Mlp, x_s: torch.Tensor, x_d: torch.Tensor) -> torch.Tensor:
    """BxNx3 driving keypoints stitched to the source: x_d + offsets, tx and ty added to x, y."""
    bs, num_kp = x_d.shape[:2]
    delta = stitching_delta(stitching, x_s, x_d)
    offsets = delta[:, :3 * num_kp].reshape(bs, num_kp, 3)
    shift = torch.cat([delta[:, 3 * num_kp:3 * num_kp + 2], torch.zeros_like(delta[:, :1])], dim=1)
    return x_d + offsets + shift[:, None, :]


def retarget_eye(eye: Mlp, x_s: torch.Tensor, eye_ratio: torch.Tensor) -> torch.Tensor:
    """Eye retargeting offsets BxNx3 from the eye MLP on [x_s flattened, eye_ratio (Bx3)]."""
    return eye(_flat_pair(x_s, eye_ratio)).reshape(x_s.shape[0], -1, 3)


def retarget_lip(lip: Mlp, x_s: torch.Tensor, lip_ratio: torch.Tensor) -> torch.Tensor:
    """Lip retargeting offsets BxNx3 from the lip MLP on [x_s flattened, lip_ratio (Bx2)]."""
    return lip(_flat_pair(x_s, lip_ratio)).reshape(x_s.shape[0], -1, 3)
