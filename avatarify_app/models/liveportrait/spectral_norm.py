"""A 2D convolution with spectral normalisation (Miyato et al., ICLR 2018), stored as the
authors' checkpoints store it.

The LivePortrait authors wrap the SPADE decoder's convolutions in
``torch.nn.utils.spectral_norm`` (the hook-based form), whose state dict holds ``weight_orig``
(the raw kernel), ``weight_u`` (Cout) and ``weight_v`` (Cin*kh*kw), plus ``bias``. Its
semantics, which this module reproduces without hooks:

- the kernel is W = weight_orig / sigma with sigma = u . (W_mat v), W_mat = weight_orig
  reshaped to Cout x (Cin*kh*kw);
- in eval mode u and v are used as stored (no power iteration), so a loaded file gives the
  same output every call;
- in training mode one power iteration first updates u and v in place
  (v = normalize(W_mat^T u), u = normalize(W_mat v), eps 1e-12), as torch's hook does.

(``torch.nn.utils.parametrizations.spectral_norm`` computes the same sigma but stores its
tensors under other names, so it cannot load the released files as they are.)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-12


class SpectralNormConv2d(nn.Module):
    """Conv2d(in_channels, out_channels, kernel_size, padding, dilation, bias) with W / sigma(W)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0,
                 dilation: int = 1, bias: bool = True) -> None:
        super().__init__()
        self.padding = padding
        self.dilation = dilation
        # Registration order follows the released files: bias, then weight_orig, weight_u, weight_v.
        self.register_parameter("bias", nn.Parameter(torch.empty(out_channels)) if bias else None)
        self.weight_orig = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        fan_in = in_channels * kernel_size * kernel_size
        self.register_buffer("weight_u", F.normalize(torch.randn(out_channels), dim=0, eps=EPS))
        self.register_buffer("weight_v", F.normalize(torch.randn(fan_in), dim=0, eps=EPS))
        nn.init.kaiming_uniform_(self.weight_orig, a=math.sqrt(5))  # nn.Conv2d's initialisation
        if self.bias is not None:
            bound = 1 / math.sqrt(fan_in)
            nn.init.uniform_(self.bias, -bound, bound)

    def normalized_weight(self) -> torch.Tensor:
        """weight_orig / sigma; in training mode after one in-place power iteration on u, v."""
        w_mat = self.weight_orig.reshape(self.weight_orig.shape[0], -1)
        u, v = self.weight_u, self.weight_v
        if self.training:
            with torch.no_grad():
                v = F.normalize(torch.mv(w_mat.t(), u), dim=0, eps=EPS, out=v)
                u = F.normalize(torch.mv(w_mat, v), dim=0, eps=EPS, out=u)
                u, v = u.clone(), v.clone()
        sigma = torch.dot(u, torch.mv(w_mat, v))
        return self.weight_orig / sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.normalized_weight(), self.bias, padding=self.padding, dilation=self.dilation)
