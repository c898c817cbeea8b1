"""SPADE residual blocks (Park et al., CVPR 2019) as LivePortrait's decoder uses them: every
normalisation is a parameter-free instance norm whose scale and shift are predicted, per
pixel, from the warped feature map (the "segmentation map" of the SPADE paper).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from avatarify_app.models.liveportrait.spectral_norm import SpectralNormConv2d

HIDDEN = 128  # width of SPADE's shared conv


class SPADE(nn.Module):
    """(x BxCxHxW, segmap BxLxhxw) -> instance_norm(x) * (1 + gamma) + beta, with gamma and beta
    (BxCxHxW) from 3x3 convs on the segmap resized (nearest) to HxW."""

    def __init__(self, norm_nc: int, label_nc: int) -> None:
        super().__init__()
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, HIDDEN, kernel_size=3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(HIDDEN, norm_nc, kernel_size=3, padding=1)
        self.mlp_beta = nn.Conv2d(HIDDEN, norm_nc, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor, segmap: torch.Tensor) -> torch.Tensor:
        normalized = F.instance_norm(x, eps=1e-5)
        segmap = F.interpolate(segmap, size=x.shape[2:], mode="nearest")
        actv = self.mlp_shared(segmap)
        return normalized * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class SPADEResnetBlock(nn.Module):
    """(x B x fin x H x W, seg) -> B x fout x H x W: shortcut + conv_1(lrelu(norm_1(conv_0(lrelu(norm_0(x)))))),
    the shortcut being conv_s(norm_s(x)) (1x1, no bias) when fin != fout, else x. All convs are
    spectrally normalised; LeakyReLU slope 0.2."""

    def __init__(self, fin: int, fout: int, label_nc: int, dilation: int = 1) -> None:
        super().__init__()
        self.learned_shortcut = fin != fout
        fmiddle = min(fin, fout)
        self.conv_0 = SpectralNormConv2d(fin, fmiddle, kernel_size=3, padding=dilation, dilation=dilation)
        self.conv_1 = SpectralNormConv2d(fmiddle, fout, kernel_size=3, padding=dilation, dilation=dilation)
        if self.learned_shortcut:
            self.conv_s = SpectralNormConv2d(fin, fout, kernel_size=1, bias=False)
        self.norm_0 = SPADE(fin, label_nc)
        self.norm_1 = SPADE(fmiddle, label_nc)
        if self.learned_shortcut:
            self.norm_s = SPADE(fin, label_nc)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        x_s = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 0.2))
        return x_s + dx
