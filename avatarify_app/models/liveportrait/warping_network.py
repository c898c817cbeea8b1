"""Warping module W (LivePortrait, Guo et al. 2024, Sec. 3.1): the source feature volume f_s is
warped by the dense flow the implicit keypoints imply, folded back to 2D, refined by two
convolutions and masked by the occlusion map; the SPADE decoder turns the result into the image.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from avatarify_app.models.liveportrait.blocks import SameBlock2d
from avatarify_app.models.liveportrait.dense_motion import DenseMotionNetwork


class WarpingNetwork(nn.Module):
    """(feature_3d BxCxDxHxW, kp_driving BxNx3, kp_source BxNx3) ->
    {'occlusion_map': Bx1xHxW or None, 'deformation': BxDxHxWx3, 'out': B x F x H x W},
    F = block_expansion * 2^num_down_blocks (released: 32x16x64x64 in, 256x64x64 out).

    ``max_features`` must equal C * D (the volume folded into channels). With
    ``flag_use_occlusion_map`` false the occlusion map is returned but not applied.
    """

    def __init__(self, num_kp: int, block_expansion: int, max_features: int, num_down_blocks: int,
                 reshape_channel: int, estimate_occlusion_map: bool = False,
                 dense_motion_params: Mapping[str, Any] | None = None, flag_use_occlusion_map: bool = True,
                 ) -> None:
        super().__init__()
        if dense_motion_params is None:
            raise ValueError("warping_module_params needs dense_motion_params (the warping module has no "
                             "other way to move the features)")
        self.dense_motion_network = DenseMotionNetwork(
            num_kp=num_kp, feature_channel=reshape_channel, estimate_occlusion_map=estimate_occlusion_map,
            **dense_motion_params)
        width = block_expansion * 2**num_down_blocks
        self.third = SameBlock2d(max_features, width, kernel_size=3, padding=1, lrelu=True)
        self.fourth = nn.Conv2d(width, width, kernel_size=1)
        self.flag_use_occlusion_map = flag_use_occlusion_map

    def forward(self, feature_3d: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor,
                ) -> dict[str, torch.Tensor | None]:
        motion = self.dense_motion_network(feature_3d, kp_driving=kp_driving, kp_source=kp_source)
        occlusion_map = motion.get("occlusion_map")
        deformation = motion["deformation"]  # BxDxHxWx3
        out = F.grid_sample(feature_3d, deformation, mode="bilinear", padding_mode="zeros",
                            align_corners=False)  # BxCxDxHxW
        bs, c, d, h, w = out.shape
        out = self.fourth(self.third(out.view(bs, c * d, h, w)))  # B x F x H x W
        if self.flag_use_occlusion_map and occlusion_map is not None:
            out = out * occlusion_map
        return {"occlusion_map": occlusion_map, "deformation": deformation, "out": out}
