"""Dense motion network of LivePortrait's warping module W (Guo et al. 2024, Sec. 3.1; the
3D form of face vid2vid, Wang et al. 2021, after FOMM's Sec. 3.2).

From the source keypoints x_s and driving keypoints x_d (BxNx3, normalised coordinates) it
builds N + 1 candidate flows on the feature volume: the identity (background) and, for each
keypoint k, the translation p -> p - x_d,k + x_s,k. A 3D hourglass looks at the compressed
source volume warped by every candidate plus the Gaussian heatmap differences and predicts
a softmax mask over the candidates; the dense flow is their mask-weighted sum. An occlusion
map (sigmoid) comes from the hourglass output with its depth folded into the channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from avatarify_app.models.liveportrait.geometry import KP_VARIANCE, kp2gaussian, make_coordinate_grid
from avatarify_app.models.liveportrait.hourglass import Hourglass


class DenseMotionNetwork(nn.Module):
    """(feature BxCxDxHxW, kp_driving BxNx3, kp_source BxNx3) ->
    {'mask': Bx(N+1)xDxHxW, 'deformation': BxDxHxWx3, 'occlusion_map': Bx1xHxW (if estimated)}.

    Released sizes: C = 32, D = 16, H = W = 64, N = 21, ``compress`` = 4 channels, so the
    hourglass sees (N + 1) * (compress + 1) = 110 channels.
    """

    def __init__(self, block_expansion: int, num_blocks: int, max_features: int, num_kp: int,
                 feature_channel: int, reshape_depth: int, compress: int,
                 estimate_occlusion_map: bool = True) -> None:
        super().__init__()
        self.num_kp = num_kp
        self.hourglass = Hourglass(block_expansion, in_features=(num_kp + 1) * (compress + 1),
                                   max_features=max_features, num_blocks=num_blocks)
        self.mask = nn.Conv3d(self.hourglass.out_filters, num_kp + 1, kernel_size=7, padding=3)
        self.compress = nn.Conv3d(feature_channel, compress, kernel_size=1)
        self.norm = nn.BatchNorm3d(compress, affine=True)
        self.estimate_occlusion_map = estimate_occlusion_map
        self.occlusion = (nn.Conv2d(self.hourglass.out_filters * reshape_depth, 1, kernel_size=7, padding=3)
                          if estimate_occlusion_map else None)

    def create_sparse_motions(self, feature: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor,
                              ) -> torch.Tensor:
        """Bx(N+1)xDxHxWx3 sampling grids: identity first, then p - x_d,k + x_s,k per keypoint."""
        bs, _, d, h, w = feature.shape
        identity = make_coordinate_grid((d, h, w), kp_source).view(1, 1, d, h, w, 3)
        per_kp = identity - kp_driving.view(bs, self.num_kp, 1, 1, 1, 3)
        per_kp = per_kp + kp_source.view(bs, self.num_kp, 1, 1, 1, 3)
        return torch.cat([identity.expand(bs, 1, d, h, w, 3), per_kp], dim=1)

    def create_deformed_feature(self, feature: torch.Tensor, sparse_motions: torch.Tensor) -> torch.Tensor:
        """The volume sampled along every candidate flow: Bx(N+1)xCxDxHxW (trilinear, zero padding)."""
        bs, c, d, h, w = feature.shape
        k = self.num_kp + 1
        repeated = feature.unsqueeze(1).expand(bs, k, c, d, h, w).reshape(bs * k, c, d, h, w)
        grids = sparse_motions.reshape(bs * k, d, h, w, 3)
        deformed = F.grid_sample(repeated, grids, mode="bilinear", padding_mode="zeros", align_corners=False)
        return deformed.view(bs, k, c, d, h, w)

    def create_heatmap_representations(self, feature: torch.Tensor, kp_driving: torch.Tensor,
                                       kp_source: torch.Tensor) -> torch.Tensor:
        """Gaussian(x_d) - Gaussian(x_s) per keypoint, a zero map for the background: Bx(N+1)x1xDxHxW."""
        spatial = tuple(feature.shape[-3:])
        heatmap = kp2gaussian(kp_driving, spatial, KP_VARIANCE) - kp2gaussian(kp_source, spatial, KP_VARIANCE)
        zeros = heatmap.new_zeros(heatmap.shape[0], 1, *spatial)
        return torch.cat([zeros, heatmap], dim=1).unsqueeze(2)

    def forward(self, feature: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor,
                ) -> dict[str, torch.Tensor]:
        bs, _, d, h, w = feature.shape
        feature = F.relu(self.norm(self.compress(feature)))  # B x compress x D x H x W
        sparse_motion = self.create_sparse_motions(feature, kp_driving, kp_source)
        deformed = self.create_deformed_feature(feature, sparse_motion)
        heatmap = self.create_heatmap_representations(deformed, kp_driving, kp_source)
        net_in = torch.cat([heatmap, deformed], dim=2).view(bs, -1, d, h, w)  # B x (N+1)(compress+1) x D x H x W
        prediction = self.hourglass(net_in)  # B x out_filters x D x H x W

        mask = F.softmax(self.mask(prediction), dim=1)  # Bx(N+1)xDxHxW
        flows = sparse_motion.permute(0, 1, 5, 2, 3, 4)  # Bx(N+1)x3xDxHxW
        deformation = (flows * mask.unsqueeze(2)).sum(dim=1).permute(0, 2, 3, 4, 1)  # BxDxHxWx3
        out = {"mask": mask, "deformation": deformation}
        if self.occlusion is not None:
            folded = prediction.reshape(bs, -1, h, w)  # B x (out_filters * D) x H x W
            out["occlusion_map"] = torch.sigmoid(self.occlusion(folded))  # Bx1xHxW
        return out
