"""LivePortrait's warping module W rewritten for CPU inference, same outputs to float rounding.

Per avatar (``prepare_source``): the dense motion network's compression of the feature volume
(1x1x1 conv, BN, ReLU) and the source keypoints' Gaussian heatmaps.

Per driving frame:

- The N + 1 candidate flows are the identity grid moved by a constant per keypoint, so each
  coordinate of a sample depends on one axis only: trilinear sampling with zero padding is a
  product of three 1D interpolations (``axis_interpolation``), three small matrix products
  instead of a general ``grid_sample``. The Gaussian heatmaps factor the same way.
- BatchNorm is folded into every conv of the hourglass and of ``third``.
- The 7x7x7 mask conv runs as an FFT convolution, the 7x7 occlusion conv (one output channel)
  as a matrix product and shifted sums (``_fast_ops``).
- The dense flow is the identity plus the mask-weighted keypoint offsets (the masks sum to one).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from avatarify_app.engines.common.fuse import fold_batchnorm
from avatarify_app.engines.liveportrait._fast_ops import FFTConv3d, ShiftSumConv2d, conv_module
from avatarify_app.models.liveportrait.geometry import KP_VARIANCE
from avatarify_app.models.liveportrait.warping_network import WarpingNetwork


def grid_axis(n: int, ref: torch.Tensor) -> torch.Tensor:
    """The identity grid's coordinates along an axis of n samples (as ``make_coordinate_grid``)."""
    return 2 * (torch.arange(n, dtype=ref.dtype, device=ref.device) / (n - 1)) - 1


def axis_interpolation(coords: torch.Tensor, n: int) -> torch.Tensor:
    """Linear interpolation matrices ... x n_out x n for normalised sample coordinates ``coords``
    (... x n_out) on an axis of n samples, ``grid_sample``'s convention (align_corners False,
    zeros outside)."""
    pos = ((coords + 1) * n - 1) / 2
    lo = torch.floor(pos)
    frac = pos - lo
    lo = lo.long()
    cols = torch.arange(n, device=coords.device)
    m = (cols == lo.unsqueeze(-1)).to(coords.dtype) * (1 - frac).unsqueeze(-1)
    return m + (cols == (lo + 1).unsqueeze(-1)).to(coords.dtype) * frac.unsqueeze(-1)


def gaussian_factors(kp: torch.Tensor, spatial: tuple[int, int, int]) -> list[torch.Tensor]:
    """exp(-(p - kp)^2 / (2 var)) per axis: [BxNxD, BxNxH, BxNxW] (z, y, x); their outer
    product is ``kp2gaussian``."""
    out = []
    for axis, n in zip((2, 1, 0), spatial, strict=True):
        diff = grid_axis(n, kp).view(1, 1, n) - kp[:, :, axis: axis + 1]
        out.append(torch.exp(-0.5 * diff * diff / KP_VARIANCE))
    return out


def outer3(z: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """BxNxD, BxNxH, BxNxW -> BxNxDxHxW outer products."""
    return z[..., :, None, None] * (y[..., None, :, None] * x[..., None, None, :])


def _folded(conv: nn.Module, norm: nn.Module | None, activation: str | None = None, winograd: bool | str = False,
            negative_slope: float = 0.01) -> nn.Module:
    """``conv`` (BatchNorm ``norm`` folded in) + activation as a ``conv_module``."""
    if norm is not None:
        conv = fold_batchnorm(conv, norm)
    bias = None if conv.bias is None else conv.bias.detach()
    return conv_module(conv.weight.detach(), bias, activation=activation, negative_slope=negative_slope,
                       winograd=winograd)


MIN_WINOGRAD_SIDE = 16


@dataclass
class PreparedSource:
    """What the warping module keeps per avatar."""

    feature: torch.Tensor  # BxCxDxHxW
    kp_source: torch.Tensor  # BxNx3
    compressed: torch.Tensor  # B x compress x D x H x W
    heat_source: torch.Tensor  # BxNxDxHxW


class FastWarping(nn.Module):
    """``WarpingNetwork`` for a prepared source: kp_driving BxNx3 -> {'occlusion_map' Bx1xHxW or
    None, 'deformation' BxDxHxWx3, 'out' BxFxHxW}."""

    def __init__(self, warping: WarpingNetwork, winograd: bool | str = "auto", fft_tile: int = 16,
                 volume_size: int = 64) -> None:
        super().__init__()
        warping = warping.eval()
        dm = warping.dense_motion_network
        self.num_kp = dm.num_kp
        self.flag_use_occlusion_map = warping.flag_use_occlusion_map
        self.compress = _folded(dm.compress, dm.norm, "relu")
        enc, dec = dm.hourglass.encoder, dm.hourglass.decoder
        # Winograd ("auto") only on levels of at least MIN_WINOGRAD_SIDE pixels a side, for a volume of
        # ``volume_size`` (the released 64): the deep levels' 4x4 and 8x8 maps give too few tiles
        # per matrix product to beat their weights' size (4x as transformed kernels).
        levels = len(enc.down_blocks)

        def level(i: int) -> bool | str:  # level i works at volume_size / 2^i
            if winograd == "auto":
                return "auto" if volume_size >> i >= MIN_WINOGRAD_SIDE else False
            return winograd

        self.down = nn.ModuleList(_folded(blk.conv, blk.norm, "relu", level(i)) for i, blk in enumerate(enc.down_blocks))
        self.up = nn.ModuleList(_folded(blk.conv, blk.norm, "relu", level(levels - 1 - i))
                                for i, blk in enumerate(dec.up_blocks))
        self.final = _folded(dec.conv, dec.norm, "relu", winograd)
        self.mask = FFTConv3d(dm.mask.weight, dm.mask.bias, tile=fft_tile)
        self.occlusion = (ShiftSumConv2d(dm.occlusion.weight, dm.occlusion.bias)
                          if dm.occlusion is not None else None)
        self.third = _folded(warping.third.conv, warping.third.norm, "leaky_relu", winograd)
        self.fourth = _folded(warping.fourth, None)

    def prepare_source(self, feature: torch.Tensor, kp_source: torch.Tensor) -> PreparedSource:
        """``feature`` in the module's dtype; keypoints (and all geometry) in float32."""
        compressed = self.compress(feature)
        heat = outer3(*gaussian_factors(kp_source.float(), tuple(feature.shape[2:])))
        return PreparedSource(feature, kp_source.float(), compressed.contiguous(), heat)

    def sample_candidates(self, compressed: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """``compressed`` (BxCxDxHxW) sampled on the identity grid moved by each offset
        (BxKx3, x y z): BxKxCxDxHxW."""
        b, c, d, h, w = compressed.shape
        k = offsets.shape[1]
        mats = []
        for axis, n in ((0, w), (1, h), (2, d)):
            coords = grid_axis(n, offsets).view(1, 1, n) + offsets[:, :, axis: axis + 1]
            mats.append(axis_interpolation(coords, n).to(compressed.dtype))  # BxKxn_out x n_in
        mx, my, mz = mats
        out = []
        for i in range(b):
            t = torch.matmul(compressed[i].reshape(c * d * h, w), mx[i].reshape(k * w, w).t())  # (CDH) x (K W)
            t = t.view(c, d, h, k, w).permute(3, 2, 0, 1, 4).reshape(k, h, c * d * w)
            t = torch.bmm(my[i], t).view(k, h, c, d, w).permute(0, 3, 1, 2, 4).reshape(k, d, h * c * w)
            t = torch.bmm(mz[i], t).view(k, d, h, c, w).permute(0, 3, 1, 2, 4)
            out.append(t)
        return torch.stack(out)  # B K C D H W

    def hourglass(self, x: torch.Tensor) -> torch.Tensor:
        skips = [x]
        for conv in self.down:
            y = conv(skips[-1])
            b, c, d, h, w = y.shape
            skips.append(y.view(b, c, d, h // 2, 2, w // 2, 2).mean(dim=(4, 6)))  # avg_pool3d (1, 2, 2)
        out = skips.pop()
        for conv in self.up:
            out = F.interpolate(out, scale_factor=(1.0, 2.0, 2.0), mode="nearest")
            out = torch.cat([conv(out), skips.pop()], dim=1)
        return self.final(out)

    def forward(self, source: PreparedSource, kp_driving: torch.Tensor) -> dict[str, torch.Tensor | None]:
        feature, kp_source = source.feature, source.kp_source
        kp_driving = kp_driving.float()
        b, _, d, h, w = feature.shape
        offsets = kp_source - kp_driving  # BxNx3: candidate k samples at p + x_s,k - x_d,k
        offsets = torch.cat([offsets.new_zeros(b, 1, 3), offsets], dim=1)  # identity first
        deformed = self.sample_candidates(source.compressed, offsets)  # B x (N+1) x C x D x H x W
        heat = outer3(*gaussian_factors(kp_driving, (d, h, w))) - source.heat_source  # BxNxDxHxW
        heat = torch.cat([heat.new_zeros(b, 1, d, h, w), heat], dim=1).unsqueeze(2).to(deformed.dtype)
        net_in = torch.cat([heat, deformed], dim=2).view(b, -1, d, h, w)
        prediction = self.hourglass(net_in)
        mask = F.softmax(self.mask(prediction).float(), dim=1)  # B x (N+1) x D x H x W
        axes = [grid_axis(n, kp_driving) for n in (d, h, w)]
        grid = torch.stack(torch.meshgrid(*axes, indexing="ij")[::-1], dim=-1)  # DxHxWx3 (x, y, z)
        deformation = grid + torch.einsum("bkdhw,bkc->bdhwc", mask[:, 1:], offsets[:, 1:])
        occlusion_map = None
        if self.occlusion is not None:
            occlusion_map = torch.sigmoid(self.occlusion(prediction.reshape(b, -1, h, w)))
        out = F.grid_sample(feature.float(), deformation, mode="bilinear", padding_mode="zeros", align_corners=False)
        out = self.fourth(self.third(out.to(feature.dtype).view(b, -1, h, w)))
        if self.flag_use_occlusion_map and occlusion_map is not None:
            out = out * occlusion_map
        return {"occlusion_map": occlusion_map, "deformation": deformation, "out": out}
