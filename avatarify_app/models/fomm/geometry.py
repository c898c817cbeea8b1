"""Coordinate grids, Gaussian keypoint heatmaps, 2x2 inverses and anti-aliased downsampling.

Coordinates are normalised to [-1, 1] in (x, y) order, x along the width, so they can be
fed to ``grid_sample`` directly (FOMM paper, Sec. 3: keypoints p_k live in this frame).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def make_coordinate_grid(height: int, width: int, dtype: torch.dtype = torch.float32,
                         device: torch.device | None = None) -> torch.Tensor:
    """Grid of (x, y) positions, x_j = 2 j / (w - 1) - 1 and y_i = 2 i / (h - 1) - 1.  # HxWx2"""
    x = torch.arange(width, dtype=dtype, device=device)
    y = torch.arange(height, dtype=dtype, device=device)
    x = 2.0 * (x / (width - 1)) - 1.0
    y = 2.0 * (y / (height - 1)) - 1.0
    xx = x.view(1, width).expand(height, width)
    yy = y.view(height, 1).expand(height, width)
    return torch.stack((xx, yy), dim=2)


def keypoint_heatmaps(value: torch.Tensor, height: int, width: int, variance: float) -> torch.Tensor:
    """Unnormalised Gaussians exp(-|z - p_k|^2 / (2 variance)) around each keypoint.

    value: BxKx2 -> BxKxHxW.
    """
    grid = make_coordinate_grid(height, width, value.dtype, value.device)  # HxWx2
    diff = grid.view(1, 1, height, width, 2) - value.view(*value.shape[:2], 1, 1, 2)
    return torch.exp(-0.5 * (diff * diff).sum(-1) / variance)


def inverse_2x2(matrix: torch.Tensor) -> torch.Tensor:
    """Closed-form inverse of ...x2x2 matrices: adj(A) / det(A) (ONNX has no matrix inverse)."""
    a = matrix[..., 0, 0]
    b = matrix[..., 0, 1]
    c = matrix[..., 1, 0]
    d = matrix[..., 1, 1]
    det = a * d - b * c
    row0 = torch.stack((d, -b), dim=-1)
    row1 = torch.stack((-c, a), dim=-1)
    return torch.stack((row0, row1), dim=-2) / det[..., None, None]


def matmul_2x2(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Batched product of ...x2x2 matrices written out (exportable, no BLAS call per keypoint)."""
    l00, l01, l10, l11 = left[..., 0, 0], left[..., 0, 1], left[..., 1, 0], left[..., 1, 1]
    r00, r01, r10, r11 = right[..., 0, 0], right[..., 0, 1], right[..., 1, 0], right[..., 1, 1]
    row0 = torch.stack((l00 * r00 + l01 * r10, l00 * r01 + l01 * r11), dim=-1)
    row1 = torch.stack((l10 * r00 + l11 * r10, l10 * r01 + l11 * r11), dim=-1)
    return torch.stack((row0, row1), dim=-2)


class AntiAliasInterpolation2d(nn.Module):
    """Gaussian blur then keep every (1/scale)-th pixel, channel by channel.

    sigma = (1/scale - 1) / 2 and kernel size 2 round(4 sigma) + 1 (13 at scale 0.25); the
    kernel is the buffer ``weight`` (C x 1 x k x k) so it loads from checkpoints. Blurring with
    zero padding k//2 and then subsampling from index 0 equals one strided convolution.
    """

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        self.scale = scale
        self.stride = round(1.0 / scale)
        sigma = (1.0 / scale - 1.0) / 2.0
        size = 2 * round(sigma * 4) + 1
        self.pad = size // 2
        self.groups = channels
        axis = torch.arange(size, dtype=torch.float32) - (size - 1) / 2.0
        g = torch.exp(-(axis**2) / (2.0 * sigma**2))
        kernel = g[:, None] * g[None, :]
        kernel = kernel / kernel.sum()
        self.register_buffer("weight", kernel.expand(channels, 1, size, size).contiguous())

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """BxCxHxW -> BxCx(H*scale)x(W*scale)."""
        if self.scale == 1.0:
            return image
        return F.conv2d(image, self.weight, stride=self.stride, padding=self.pad, groups=self.groups)
