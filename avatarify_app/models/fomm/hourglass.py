"""U-Net style hourglass used by the keypoint detector and the dense motion network.

With block expansion e, max features m, n blocks and c input channels, encoder block i maps
(c if i == 0 else min(m, e 2^i)) -> min(m, e 2^(i+1)) channels at half the resolution; the
decoder climbs back, concatenating each upsampled map with the matching encoder output and
finally with the input itself, so the output has e + c channels at the input's size.
"""

from __future__ import annotations

import torch
from torch import nn

from avatarify_app.models.fomm.blocks import DownBlock2d, UpBlock2d


class Encoder(nn.Module):
    """Returns [input, down_0(input), down_1(...), ...] (n + 1 tensors)."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256) -> None:
        super().__init__()
        blocks = []
        for i in range(num_blocks):
            cin = in_features if i == 0 else min(max_features, block_expansion * (2**i))
            cout = min(max_features, block_expansion * (2 ** (i + 1)))
            blocks.append(DownBlock2d(cin, cout, kernel_size=3, padding=1))
        self.down_blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class Decoder(nn.Module):
    """Consumes the encoder's list from the deepest map up; output has e + c channels."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256) -> None:
        super().__init__()
        blocks = []
        for i in reversed(range(num_blocks)):
            mult = 1 if i == num_blocks - 1 else 2
            cin = mult * min(max_features, block_expansion * (2 ** (i + 1)))
            cout = min(max_features, block_expansion * (2**i))
            blocks.append(UpBlock2d(cin, cout, kernel_size=3, padding=1))
        self.up_blocks = nn.ModuleList(blocks)
        self.out_filters = block_expansion + in_features

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor:
        out = skips[-1]
        for j, block in enumerate(self.up_blocks):
            out = torch.cat((block(out), skips[-2 - j]), dim=1)
        return out


class Hourglass(nn.Module):
    """BxCxHxW -> Bx(e + C)xHxW (H and W divisible by 2^n)."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256) -> None:
        super().__init__()
        self.encoder = Encoder(block_expansion, in_features, num_blocks, max_features)
        self.decoder = Decoder(block_expansion, in_features, num_blocks, max_features)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))
