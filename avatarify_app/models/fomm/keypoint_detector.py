"""Unsupervised keypoint detector (FOMM paper, Sec. 3.1 and Eq. (4)-(5)).

An hourglass turns the image into one heatmap per keypoint; a spatial softmax makes each
heatmap a distribution, the keypoint p_k is its expectation over the coordinate grid, and the
local affine Jacobian J_k (the first-order term of the Taylor expansion, Eq. (4)) is the
heatmap-weighted average of four regressed maps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from avatarify_app.models.fomm.geometry import AntiAliasInterpolation2d, make_coordinate_grid
from avatarify_app.models.fomm.hourglass import Hourglass


class KPDetector(nn.Module):
    """image BxCxHxW in [0, 1] -> {'value': BxKx2, 'jacobian': BxKx2x2 (if estimated)}.

    ``kp`` and ``jacobian`` are 7x7 convolutions with ``pad`` padding (0 in every published
    config: 64x64 features give 58x58 heatmaps). ``single_jacobian_map`` regresses one set of
    four maps shared by all keypoints.
    """

    def __init__(self, block_expansion: int, num_kp: int, num_channels: int, max_features: int,
                 num_blocks: int, temperature: float, estimate_jacobian: bool = False,
                 scale_factor: float = 1, single_jacobian_map: bool = False, pad: int = 0) -> None:
        super().__init__()
        self.num_kp = num_kp
        self.temperature = temperature
        self.scale_factor = scale_factor
        self.predictor = Hourglass(block_expansion, in_features=num_channels,
                                   max_features=max_features, num_blocks=num_blocks)
        self.kp = nn.Conv2d(self.predictor.out_filters, num_kp, kernel_size=7, padding=pad)
        if estimate_jacobian:
            self.num_jacobian_maps = 1 if single_jacobian_map else num_kp
            self.jacobian = nn.Conv2d(self.predictor.out_filters, 4 * self.num_jacobian_maps,
                                      kernel_size=7, padding=pad)
            # Identity initialisation: zero weights, bias [1, 0, 0, 1] per map.
            nn.init.zeros_(self.jacobian.weight)
            with torch.no_grad():
                self.jacobian.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0]).repeat(self.num_jacobian_maps))
        else:
            self.num_jacobian_maps = 0
            self.jacobian = None
        if scale_factor != 1:
            self.down = AntiAliasInterpolation2d(num_channels, scale_factor)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.scale_factor != 1:
            image = self.down(image)  # BxCx64x64 at 256 px
        features = self.predictor(image)  # Bx(e+C)x64x64
        logits = self.kp(features)  # BxKxhxw (58x58)
        b, k, h, w = logits.shape
        heatmap = F.softmax(logits.reshape(b, k, h * w) / self.temperature, dim=2).reshape(b, k, h, w)
        grid = make_coordinate_grid(h, w, heatmap.dtype, heatmap.device)  # hxwx2
        value = (heatmap.unsqueeze(-1) * grid.view(1, 1, h, w, 2)).sum(dim=(2, 3))  # BxKx2
        out = {"value": value}
        if self.jacobian is not None:
            maps = self.jacobian(features).reshape(b, self.num_jacobian_maps, 4, h, w)
            jac = (heatmap.unsqueeze(2) * maps).reshape(b, k, 4, h * w).sum(dim=-1)  # BxKx4
            out["jacobian"] = jac.reshape(b, k, 2, 2)
        return out
