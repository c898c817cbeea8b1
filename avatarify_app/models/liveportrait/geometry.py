"""Coordinate grids and Gaussian keypoint heatmaps on LivePortrait's 3D feature volume.

Coordinates are normalised to [-1, 1] per axis ("right-down-in": x grows to the right, y
downwards, z into the volume), the convention of ``grid_sample`` with ``align_corners=False``
as the authors use it.
"""

from __future__ import annotations

import torch

KP_VARIANCE = 0.01  # heatmap variance in normalised units


def make_coordinate_grid(spatial_size: tuple[int, int, int], ref: torch.Tensor) -> torch.Tensor:
    """DxHxWx3 grid of (x, y, z) in [-1, 1], in ``ref``'s dtype and device."""
    d, h, w = spatial_size

    def axis(n: int) -> torch.Tensor:
        return 2 * (torch.arange(n, dtype=ref.dtype, device=ref.device) / (n - 1)) - 1

    x = axis(w).view(1, 1, w).expand(d, h, w)
    y = axis(h).view(1, h, 1).expand(d, h, w)
    z = axis(d).view(d, 1, 1).expand(d, h, w)
    return torch.stack([x, y, z], dim=3)


def kp2gaussian(kp: torch.Tensor, spatial_size: tuple[int, int, int], kp_variance: float = KP_VARIANCE,
                ) -> torch.Tensor:
    """BxNx3 keypoints -> BxNxDxHxW heatmaps exp(-|p - kp|^2 / (2 * variance))."""
    grid = make_coordinate_grid(spatial_size, kp)  # DxHxWx3
    diff = grid.view(1, 1, *grid.shape) - kp.view(*kp.shape[:2], 1, 1, 1, 3)
    return torch.exp(-0.5 * diff.pow(2).sum(-1) / kp_variance)
