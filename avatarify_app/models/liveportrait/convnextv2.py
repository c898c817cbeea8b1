"""ConvNeXt V2 backbone (Woo et al., CVPR 2023) with LivePortrait's regression heads.

LivePortrait's motion extractor M (Guo et al. 2024, Sec. 3.1) is a ConvNeXt-V2-Tiny whose
classifier is replaced by linear heads for the canonical keypoints x_c, the head pose as
66-bin logits per angle, the translation t, the expression deformation delta and the scale s.

Stages: a 4x4 stride-4 stem, then four stages of residual blocks separated by 2x2 stride-2
downsampling; each block is a 7x7 depthwise conv, LayerNorm, pointwise 4x expansion, GELU,
global response normalisation (GRN, the V2 addition) and a pointwise projection.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

TINY_DEPTHS = (3, 3, 9, 3)
TINY_DIMS = (96, 192, 384, 768)
NUM_BINS = 66  # head-pose bins of 3 degrees each


class ChannelsFirstLayerNorm(nn.Module):
    """LayerNorm over the channel axis of BxCxHxW (biased variance, eps inside the root)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class GRN(nn.Module):
    """Global response normalisation on BxHxWxC: x + gamma * (x * N(x)) + beta, where
    N(x) = ||x||_HW / (mean_C ||x||_HW + 1e-6) (ConvNeXt V2, Eq. 1-3)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gx = torch.linalg.vector_norm(x, ord=2, dim=(1, 2), keepdim=True)  # Bx1x1xC
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        return self.gamma * (x * nx) + self.beta + x


class Block(nn.Module):
    """One ConvNeXt V2 block, BxCxHxW -> same (stochastic depth is a training-only identity)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.grn = GRN(4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)  # BxHxWxC
        y = self.pwconv2(self.grn(F.gelu(self.pwconv1(self.norm(y)))))
        return x + y.permute(0, 3, 1, 2)


class ConvNeXtV2(nn.Module):
    """image Bx3xHxW -> {'pitch', 'yaw', 'roll': Bx66 bin logits, 't': Bx3, 'exp': Bx3N,
    'scale': Bx1, 'kp': Bx3N} (N = ``num_kp``; kp and exp are flat, x, y, z per keypoint)."""

    def __init__(self, num_kp: int, depths: Sequence[int] = TINY_DEPTHS, dims: Sequence[int] = TINY_DIMS,
                 in_chans: int = 3) -> None:
        super().__init__()
        depths, dims = list(depths), list(dims)
        self.downsample_layers = nn.ModuleList([nn.Sequential(
            nn.Conv2d(in_chans, dims[0], kernel_size=4, stride=4),
            ChannelsFirstLayerNorm(dims[0], eps=1e-6),
        )])
        for i in range(3):
            self.downsample_layers.append(nn.Sequential(
                ChannelsFirstLayerNorm(dims[i], eps=1e-6),
                nn.Conv2d(dims[i], dims[i + 1], kernel_size=2, stride=2),
            ))
        self.stages = nn.ModuleList(nn.Sequential(*[Block(dims[i]) for _ in range(depths[i])]) for i in range(4))
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        width = dims[-1]
        self.fc_kp = nn.Linear(width, 3 * num_kp)
        self.fc_scale = nn.Linear(width, 1)
        self.fc_pitch = nn.Linear(width, NUM_BINS)
        self.fc_yaw = nn.Linear(width, NUM_BINS)
        self.fc_roll = nn.Linear(width, NUM_BINS)
        self.fc_t = nn.Linear(width, 3)
        self.fc_exp = nn.Linear(width, 3 * num_kp)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for down, stage in zip(self.downsample_layers, self.stages, strict=True):
            x = stage(down(x))  # B x dims[i] x H/(4*2^i) x W/(4*2^i)
        return self.norm(x.mean(dim=(-2, -1)))  # global average pool -> B x dims[-1]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feat = self.forward_features(x)
        return {
            "pitch": self.fc_pitch(feat),
            "yaw": self.fc_yaw(feat),
            "roll": self.fc_roll(feat),
            "t": self.fc_t(feat),
            "exp": self.fc_exp(feat),
            "scale": self.fc_scale(feat),
            "kp": self.fc_kp(feat),
        }
