"""Dense motion network (FOMM paper, Sec. 3.2, Eq. (6)-(8)).

From sparse keypoints to a dense backward flow T_{S<-D}: each keypoint k gives a local affine
motion z -> p_k^S + J_k (z - p_k^D) with J_k = J_S,k J_D,k^-1 (Eq. (4)); the hourglass sees
the heatmap differences H_k (Eq. (6)) and the source warped by each local motion, predicts
soft masks M_k that combine the motions (Eq. (7), k = 0 being the identity background) and,
optionally, the occlusion map O (Eq. (8)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from avatarify_app.models.fomm.geometry import (
    AntiAliasInterpolation2d,
    inverse_2x2,
    keypoint_heatmaps,
    make_coordinate_grid,
    matmul_2x2,
)
from avatarify_app.models.fomm.hourglass import Hourglass


class DenseMotionNetwork(nn.Module):
    """(source BxCxHxW, kp_driving, kp_source) -> {'deformation': Bxhxwx2, 'mask': Bx(K+1)xhxw,
    'sparse_deformed': Bx(K+1)xCxhxw, 'occlusion_map': Bx1xhxw (if estimated)} at the
    ``scale_factor`` resolution (h = H/4 in every published config).
    """

    def __init__(self, block_expansion: int, num_blocks: int, max_features: int, num_kp: int,
                 num_channels: int, estimate_occlusion_map: bool = False, scale_factor: float = 1,
                 kp_variance: float = 0.01) -> None:
        super().__init__()
        self.num_kp = num_kp
        self.scale_factor = scale_factor
        self.kp_variance = kp_variance
        self.hourglass = Hourglass(block_expansion, in_features=(num_kp + 1) * (num_channels + 1),
                                   max_features=max_features, num_blocks=num_blocks)
        self.mask = nn.Conv2d(self.hourglass.out_filters, num_kp + 1, kernel_size=7, padding=3)
        if estimate_occlusion_map:
            self.occlusion = nn.Conv2d(self.hourglass.out_filters, 1, kernel_size=7, padding=3)
        else:
            self.occlusion = None
        if scale_factor != 1:
            self.down = AntiAliasInterpolation2d(num_channels, scale_factor)

    def downsample(self, source: torch.Tensor) -> torch.Tensor:
        """The source at the motion resolution; depends on the source alone (cacheable)."""
        return self.down(source) if self.scale_factor != 1 else source

    def heatmap_representation(self, kp_driving: dict, kp_source: dict, h: int, w: int) -> torch.Tensor:
        """Eq. (6): H_k = G(p_k^D) - G(p_k^S), background channel zero.  # Bx(K+1)x1xhxw"""
        heat = (keypoint_heatmaps(kp_driving["value"], h, w, self.kp_variance)
                - keypoint_heatmaps(kp_source["value"], h, w, self.kp_variance))
        zeros = torch.zeros_like(heat[:, :1])
        return torch.cat((zeros, heat), dim=1).unsqueeze(2)

    def sparse_motions(self, kp_driving: dict, kp_source: dict, h: int, w: int) -> torch.Tensor:
        """Eq. (4) per keypoint, identity for k = 0: where each driving pixel comes from in S.  # Bx(K+1)xhxwx2"""
        value_d = kp_driving["value"]
        b, k = value_d.shape[:2]
        grid = make_coordinate_grid(h, w, value_d.dtype, value_d.device).view(1, 1, h, w, 2)
        z = grid - value_d.view(b, k, 1, 1, 2)  # BxKxhxwx2
        if "jacobian" in kp_driving and "jacobian" in kp_source:
            jac = matmul_2x2(kp_source["jacobian"], inverse_2x2(kp_driving["jacobian"]))  # BxKx2x2
            jac = jac.view(b, k, 1, 1, 2, 2)
            zx, zy = z[..., 0], z[..., 1]
            z = torch.stack((jac[..., 0, 0] * zx + jac[..., 0, 1] * zy,
                             jac[..., 1, 0] * zx + jac[..., 1, 1] * zy), dim=-1)
        moved = z + kp_source["value"].view(b, k, 1, 1, 2)
        return torch.cat((grid.expand(b, 1, h, w, 2), moved), dim=1)

    def forward(self, source_image: torch.Tensor, kp_driving: dict, kp_source: dict) -> dict[str, torch.Tensor]:
        return self.motion(self.downsample(source_image), kp_driving, kp_source)

    def motion(self, small: torch.Tensor, kp_driving: dict, kp_source: dict) -> dict[str, torch.Tensor]:
        """The per-frame part, given the downsampled source ``small`` (BxCxhxw)."""
        b, c, h, w = small.shape
        k1 = self.num_kp + 1
        # Keypoint geometry stays in the keypoints' dtype (float32), then meets the image dtype.
        heat = self.heatmap_representation(kp_driving, kp_source, h, w).to(small.dtype)
        motions = self.sparse_motions(kp_driving, kp_source, h, w)  # Bx(K+1)xhxwx2
        repeated = small.unsqueeze(1).expand(b, k1, c, h, w).reshape(b * k1, c, h, w)
        deformed = F.grid_sample(repeated, motions.reshape(b * k1, h, w, 2).to(small.dtype),
                                 mode="bilinear", padding_mode="zeros", align_corners=False)
        deformed = deformed.reshape(b, k1, c, h, w)
        features = self.hourglass(torch.cat((heat, deformed), dim=2).reshape(b, k1 * (c + 1), h, w))
        mask = F.softmax(self.mask(features), dim=1)  # Bx(K+1)xhxw, Eq. (7)
        flow = (motions.permute(0, 1, 4, 2, 3).to(mask.dtype) * mask.unsqueeze(2)).sum(dim=1)
        out = {"sparse_deformed": deformed, "mask": mask, "deformation": flow.permute(0, 2, 3, 1)}
        if self.occlusion is not None:
            out["occlusion_map"] = torch.sigmoid(self.occlusion(features))  # Bx1xhxw, Eq. (8)
        return out
