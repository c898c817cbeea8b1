"""Occlusion-aware generator (FOMM paper, Sec. 3.3, Eq. (9)).

The source is encoded to a feature map xi; the dense motion network gives the backward flow
T_{S<-D} and the occlusion map O; the decoder renders xi' = O * f_w(xi, T_{S<-D}) (Eq. (9)).
Everything before the warp depends on the source image alone, so ``encode_source`` can run
once per avatar and ``animate`` once per driving frame.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from avatarify_app.models.fomm.blocks import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d
from avatarify_app.models.fomm.dense_motion import DenseMotionNetwork


def warp(features: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """f_w: sample BxCxHxW ``features`` at ``flow`` (Bxhxwx2, resized bilinearly to HxW)."""
    h, w = features.shape[2:]
    if flow.shape[1] != h or flow.shape[2] != w:
        flow = F.interpolate(flow.permute(0, 3, 1, 2), size=(h, w), mode="bilinear",
                             align_corners=False).permute(0, 2, 3, 1)
    return F.grid_sample(features, flow.to(features.dtype), mode="bilinear", padding_mode="zeros",
                         align_corners=False)


def apply_occlusion(features: torch.Tensor, occlusion: torch.Tensor) -> torch.Tensor:
    """O * xi with O (Bx1xhxw) resized bilinearly to the features' size when it differs."""
    if occlusion.shape[2:] != features.shape[2:]:
        occlusion = F.interpolate(occlusion, size=features.shape[2:], mode="bilinear", align_corners=False)
    return features * occlusion


class OcclusionAwareGenerator(nn.Module):
    """(source BxCxHxW, kp_source, kp_driving) -> {'prediction', 'deformed', 'mask',
    'sparse_deformed', 'occlusion_map'} (the last only when estimated)."""

    def __init__(self, num_channels: int, num_kp: int, block_expansion: int, max_features: int,
                 num_down_blocks: int, num_bottleneck_blocks: int, estimate_occlusion_map: bool = False,
                 dense_motion_params: dict | None = None, estimate_jacobian: bool = False) -> None:
        super().__init__()
        if dense_motion_params is not None:
            self.dense_motion_network = DenseMotionNetwork(
                num_kp=num_kp, num_channels=num_channels,
                estimate_occlusion_map=estimate_occlusion_map, **dense_motion_params)
        else:
            self.dense_motion_network = None
        self.first = SameBlock2d(num_channels, block_expansion, kernel_size=7, padding=3)
        width = [min(max_features, block_expansion * (2**i)) for i in range(num_down_blocks + 1)]
        self.down_blocks = nn.ModuleList(
            DownBlock2d(width[i], width[i + 1], kernel_size=3, padding=1) for i in range(num_down_blocks))
        self.up_blocks = nn.ModuleList(
            UpBlock2d(width[i + 1], width[i], kernel_size=3, padding=1) for i in reversed(range(num_down_blocks)))
        self.bottleneck = nn.Sequential()
        for i in range(num_bottleneck_blocks):
            self.bottleneck.add_module(f"r{i}", ResBlock2d(width[-1], kernel_size=3, padding=1))
        self.final = nn.Conv2d(block_expansion, num_channels, kernel_size=7, padding=3)
        self.num_channels = num_channels

    def encode_source(self, source_image: torch.Tensor) -> dict[str, torch.Tensor]:
        """The source-only part: {'source': BxCxHxW, 'features': xi (Bx(e 2^n)x(H/2^n)x(W/2^n)),
        'small': source at the dense-motion resolution}."""
        out = self.first(source_image)
        for block in self.down_blocks:
            out = block(out)
        cache = {"source": source_image, "features": out}
        if self.dense_motion_network is not None:
            cache["small"] = self.dense_motion_network.downsample(source_image)
        return cache

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        """Bottleneck, up blocks, final conv and sigmoid: xi' -> BxCxHxW in [0, 1]."""
        out = self.bottleneck(features)
        for block in self.up_blocks:
            out = block(out)
        return torch.sigmoid(self.final(out))

    def animate(self, cache: dict[str, torch.Tensor], kp_driving: dict, kp_source: dict,
                with_deformed: bool = True) -> dict[str, torch.Tensor]:
        """The per-frame part, given ``encode_source``'s output."""
        out = cache["features"]
        result: dict[str, torch.Tensor] = {}
        if self.dense_motion_network is not None:
            motion = self.dense_motion_network.motion(cache["small"], kp_driving, kp_source)
            result["mask"] = motion["mask"]
            result["sparse_deformed"] = motion["sparse_deformed"]
            result["deformation"] = motion["deformation"]
            out = warp(out, motion["deformation"])
            if "occlusion_map" in motion:
                result["occlusion_map"] = motion["occlusion_map"]
                out = apply_occlusion(out, motion["occlusion_map"])
            if with_deformed:
                result["deformed"] = warp(cache["source"], motion["deformation"])
        result["prediction"] = self.decode(out)
        return result

    def forward(self, source_image: torch.Tensor, kp_driving: dict, kp_source: dict) -> dict[str, torch.Tensor]:
        return self.animate(self.encode_source(source_image), kp_driving, kp_source)
