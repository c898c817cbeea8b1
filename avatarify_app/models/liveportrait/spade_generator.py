"""SPADE decoder G (LivePortrait, Guo et al. 2024, Sec. 3.1): turns the warped feature map into
the animated image, upsampling 64 -> 256 (and to 512 with a final pixel shuffle when
``upscale`` is 2, the released setting).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from avatarify_app.models.liveportrait.spade import SPADEResnetBlock

NUM_MIDDLE_BLOCKS = 6


class SPADEDecoder(nn.Module):
    """feature B x L x 64 x 64 -> image B x 3 x 256*upscale x 256*upscale in (0, 1) (sigmoid).

    L = min(max_features, block_expansion * 2^num_down_blocks) (released: 256); the middle
    blocks run at 2L channels on 64x64, then nearest x2 -> ``up_0`` (L channels) -> nearest x2
    -> ``up_1`` (``out_channels``) -> LeakyReLU -> ``conv_img``. ``upscale`` 1 makes
    ``conv_img`` a 3x3 conv to RGB; 2 makes it a conv to 12 channels and a pixel shuffle.
    """

    def __init__(self, upscale: int | None = 1, max_features: int = 256, block_expansion: int = 64,
                 out_channels: int = 64, num_down_blocks: int = 2) -> None:
        super().__init__()
        upscale = 1 if upscale is None or upscale <= 1 else upscale
        if upscale not in (1, 2):
            raise ValueError(f"upscale must be 1 or 2 (the decoder's pixel shuffle only doubles), got {upscale}")
        self.upscale = upscale
        label_nc = min(max_features, block_expansion * 2**num_down_blocks)
        middle = 2 * label_nc
        self.fc = nn.Conv2d(label_nc, middle, kernel_size=3, padding=1)
        for i in range(NUM_MIDDLE_BLOCKS):
            self.add_module(f"G_middle_{i}", SPADEResnetBlock(middle, middle, label_nc))
        self.up_0 = SPADEResnetBlock(middle, label_nc, label_nc)
        self.up_1 = SPADEResnetBlock(label_nc, out_channels, label_nc)
        if upscale == 1:
            self.conv_img = nn.Conv2d(out_channels, 3, kernel_size=3, padding=1)
        else:
            self.conv_img = nn.Sequential(nn.Conv2d(out_channels, 3 * 4, kernel_size=3, padding=1),
                                          nn.PixelShuffle(upscale_factor=2))

    def middle_blocks(self) -> list[SPADEResnetBlock]:
        return [getattr(self, f"G_middle_{i}") for i in range(NUM_MIDDLE_BLOCKS)]

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        seg = feature  # B x L x 64 x 64
        x = self.fc(feature)  # B x 2L x 64 x 64
        for block in self.middle_blocks():
            x = block(x, seg)
        x = self.up_0(F.interpolate(x, scale_factor=2.0, mode="nearest"), seg)  # B x L x 128 x 128
        x = self.up_1(F.interpolate(x, scale_factor=2.0, mode="nearest"), seg)  # B x out x 256 x 256
        return torch.sigmoid(self.conv_img(F.leaky_relu(x, 0.2)))  # B x 3 x H x W
