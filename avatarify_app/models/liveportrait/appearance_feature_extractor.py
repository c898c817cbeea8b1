"""Appearance feature extractor F (LivePortrait, Guo et al. 2024, Sec. 3.1): the source image
becomes a 3D feature volume f_s that the warping module later deforms.

Released sizes: Bx3x256x256 -> 2D features Bx512x64x64 -> reshaped to a volume
Bx32x16x64x64 (channels x depth) -> six 3D residual blocks.
"""

from __future__ import annotations

import torch
from torch import nn

from avatarify_app.models.liveportrait.blocks import DownBlock2d, ResBlock3d, SameBlock2d


class AppearanceFeatureExtractor(nn.Module):
    """image Bx3xHxW in [0, 1] -> feature volume B x reshape_channel x reshape_depth x H/4 x W/4
    (for two down blocks).

    ``max_features`` must equal ``reshape_channel * reshape_depth``: the 2D features are cut
    into that many channels of that depth.
    """

    def __init__(self, image_channel: int, block_expansion: int, num_down_blocks: int, max_features: int,
                 reshape_channel: int, reshape_depth: int, num_resblocks: int) -> None:
        super().__init__()
        self.reshape_channel = reshape_channel
        self.reshape_depth = reshape_depth
        self.first = SameBlock2d(image_channel, block_expansion, kernel_size=3, padding=1)
        widths = [min(max_features, block_expansion * 2**i) for i in range(num_down_blocks + 1)]
        self.down_blocks = nn.ModuleList(DownBlock2d(widths[i], widths[i + 1]) for i in range(num_down_blocks))
        self.second = nn.Conv2d(widths[-1], max_features, kernel_size=1)
        self.resblocks_3d = nn.Sequential()
        for i in range(num_resblocks):
            self.resblocks_3d.add_module(f"3dr{i}", ResBlock3d(reshape_channel, kernel_size=3, padding=1))

    def forward(self, source_image: torch.Tensor) -> torch.Tensor:
        out = self.first(source_image)  # Bx64x256x256
        for block in self.down_blocks:
            out = block(out)  # Bx128x128x128, Bx256x64x64
        out = self.second(out)  # Bx512x64x64
        bs, _, h, w = out.shape
        volume = out.view(bs, self.reshape_channel, self.reshape_depth, h, w)  # Bx32x16x64x64
        return self.resblocks_3d(volume)
