"""Convolutions computed with fewer multiplies than a direct convolution, same results to float
rounding (inference only; weights are copied in at construction).

- ``FFTConv3d``: a large-kernel 3D convolution as pointwise products of Fourier transforms
  (convolution theorem) over tiles of the volume (overlap-save): the 7x7x7 mask conv of the
  dense motion network costs 343 multiply-adds per voxel and channel pair directly, and about
  (22x22x12 complex products) / (16x16x16 outputs) ~ 1.4 complex ones here.
- ``ShiftSumConv2d``: a conv with very few output channels (the 7x7 occlusion conv: 2272 -> 1)
  as one matrix product to kernel-tap planes followed by shifted sums, which keeps the matrix
  product large where a direct convolution library runs a poorly shaped kernel.
- ``conv_module``: a 3x3 (or kd x 3 x 3) conv as Winograd F(4x4, 3x3) where that pays on the
  CPU (``engines.common.winograd``), else the library's direct convolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from avatarify_app.engines.common.winograd import WinogradConv

# Winograd pays when the per-tile transforms (~ Cin + Cout) are small next to the channel
# mixing (~ Cin * Cout): measured on a 2-core AVX-512 CPU, from Cin Cout / (Cin + Cout) ~ 90 up
# (512 -> 512: 2.2x, 128 -> 1024: 1.65x, 3x142 -> 142: 1.5x; 256 -> 64: 0.9x).
WINOGRAD_MIN_BALANCE = 90


class DirectConv(nn.Module):
    """F.conv2d / F.conv3d (stride 1, "same" padding) with an optional fused-in activation."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, activation: str | None = None,
                 negative_slope: float = 0.01) -> None:
        super().__init__()
        self.register_buffer("weight", weight.detach().clone().contiguous())
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        self.padding = tuple(k // 2 for k in weight.shape[2:])
        self.conv = F.conv3d if weight.dim() == 5 else F.conv2d
        self.activation = activation
        self.negative_slope = negative_slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x, self.weight, self.bias, padding=self.padding)
        if self.activation == "relu":
            return torch.relu_(y)
        if self.activation == "leaky_relu":
            return F.leaky_relu_(y, self.negative_slope)
        return y


def winograd_pays(weight: torch.Tensor) -> bool:
    """Whether a 3x3 (or kd x 3 x 3) conv with these weights runs faster as Winograd on the CPU."""
    if weight.shape[-2:] != (3, 3) or weight.dim() not in (4, 5) or (weight.dim() == 5 and weight.shape[2] % 2 == 0):
        return False
    cout = weight.shape[0]
    cin = weight.shape[1] * (weight.shape[2] if weight.dim() == 5 else 1)
    return cin * cout / (cin + cout) >= WINOGRAD_MIN_BALANCE


def conv_module(weight: torch.Tensor, bias: torch.Tensor | None, activation: str | None = None,
                negative_slope: float = 0.01, winograd: bool | str = "auto") -> nn.Module:
    """The conv (stride 1, "same" padding) + activation; Winograd for every 3x3 conv with
    ``winograd`` True, where it pays (``winograd_pays``) with "auto", never with False."""
    if winograd not in (True, False, "auto"):
        raise ValueError(f"winograd must be True, False or 'auto', got {winograd!r}")
    square = weight.shape[-2:] == (3, 3) and (weight.dim() == 4 or weight.shape[2] % 2 == 1)
    if (winograd is True and square) or (winograd == "auto" and winograd_pays(weight)):
        return WinogradConv(weight, bias, activation=activation, negative_slope=negative_slope)
    return DirectConv(weight, bias, activation=activation, negative_slope=negative_slope)


class FFTConv3d(nn.Module):
    """Same output as ``F.conv3d(x, weight, bias, padding=k // 2)`` for an odd cubic kernel k:
    BxCinxDxHxW -> BxCoutxDxHxW.

    The volume is cut into ``tile`` x ``tile`` columns of full depth; each column with its halo
    (``tile + k - 1`` a side, depth ``D + k - 1``) is transformed once, every output channel is
    a sum over input channels of products with the kernels' (conjugated) spectra, and the inverse
    transform's first ``tile`` samples per axis are the column's outputs (circular correlation
    equals linear correlation there). The kernel spectra (Cout x Cin complex numbers per
    frequency) are computed once per depth and kept.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, tile: int = 16) -> None:
        super().__init__()
        k = weight.shape[-1]
        if weight.dim() != 5 or weight.shape[2:] != (k, k, k) or k % 2 == 0:
            raise ValueError(f"FFTConv3d needs an odd cubic kernel, got {tuple(weight.shape)}")
        self.cout, self.cin = weight.shape[:2]
        self.k = k
        self.tile = tile
        # Kept in float32 on the CPU whatever the module is moved to: only their spectra are used.
        self.weight = weight.detach().float().cpu().clone()
        self.bias = None if bias is None else bias.detach().float().cpu().clone()
        self._spectra: dict[tuple, torch.Tensor] = {}

    def sizes(self, depth: int) -> tuple[int, int]:
        """FFT sizes (depth, side) for a volume of ``depth``."""
        return depth + self.k - 1, self.tile + self.k - 1

    def spectra(self, depth: int, device: torch.device) -> torch.Tensor:
        """nF x Cout x Cin complex64 (conjugated kernel spectra, frequencies first)."""
        key = (depth, device)
        if key not in self._spectra:
            fd, fs = self.sizes(depth)
            with torch.no_grad():
                spec = torch.fft.rfftn(self.weight.double().cpu(), s=(fd, fs, fs), dim=(2, 3, 4)).conj()
                spec = spec.permute(2, 3, 4, 0, 1).reshape(-1, self.cout, self.cin)
                self._spectra = {key: spec.to(torch.complex64).resolve_conj().contiguous().to(device)}
        return self._spectra[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Computed in float32 whatever x's dtype (the result is float32)."""
        x = x.float()
        b, c, d, h, w = x.shape
        p, t = self.k // 2, self.tile
        fd, fs = self.sizes(d)
        ty, tx = -(-h // t), -(-w // t)
        # Zero halo of p in front; behind, enough for whole tiles. Depth is not tiled: its FFT
        # length fd pads it with zeros behind, and the front halo moves into the crop below.
        xp = F.pad(x, (p, tx * t - w + p, p, ty * t - h + p))
        cols = xp.unfold(3, fs, t).unfold(4, fs, t)  # B C D ty tx fs fs
        cols = cols.permute(0, 3, 4, 1, 2, 5, 6).contiguous()  # B ty tx C D fs fs
        spec = torch.fft.rfftn(cols, s=(fd, fs, fs), dim=(4, 5, 6))  # B ty tx C fd fs fr
        n = b * ty * tx
        spec = spec.reshape(n, c, -1).permute(2, 1, 0).contiguous()  # nF x C x n
        out = torch.bmm(self.spectra(d, x.device), spec)  # nF x Cout x n
        out = out.permute(2, 1, 0).contiguous().view(b, ty, tx, self.cout, fd, fs, fs // 2 + 1)
        y = torch.fft.irfftn(out, s=(fd, fs, fs), dim=(4, 5, 6))  # B ty tx Cout fd fs fs
        # Output depth z reads input depths z - p .. z + p: circular index (z - p) mod fd.
        y = torch.roll(y, shifts=p, dims=4)[:, :, :, :, :d, :t, :t]
        y = y.permute(0, 3, 4, 1, 5, 2, 6).reshape(b, self.cout, d, ty * t, tx * t)[..., :h, :w]
        if self.bias is not None:
            y = y + self.bias.to(y.device).view(1, -1, 1, 1, 1)
        return y.contiguous()


class ShiftSumConv2d(nn.Module):
    """Same output as ``F.conv2d(x, weight, bias, padding=k // 2)`` for an odd square kernel:
    the Cout * k * k tap planes come from one matrix product, then each output is the sum of its
    k * k planes shifted into place. BxCinxHxW -> BxCoutxHxW."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        cout, cin, kh, kw = weight.shape
        if kh != kw or kh % 2 == 0:
            raise ValueError(f"ShiftSumConv2d needs an odd square kernel, got {tuple(weight.shape)}")
        self.k = kh
        self.cout = cout
        # Rows (tap, cout): tap-major so each tap's Cout planes are contiguous.
        self.register_buffer("taps", weight.detach().permute(2, 3, 0, 1).reshape(kh * kw * cout, cin).clone())
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        k, p = self.k, self.k // 2
        planes = torch.matmul(self.taps, x.reshape(b, c, h * w)).view(b, k * k, self.cout, h, w)
        acc = x.new_zeros(b, self.cout, h + 2 * p, w + 2 * p)
        # y[i, j] = sum_t plane_t[i + dy - p, j + dx - p]: plane t lands at offset (p - dy, p - dx).
        for dy in range(k):
            for dx in range(k):
                acc[:, :, 2 * p - dy: 2 * p - dy + h, 2 * p - dx: 2 * p - dx + w] += planes[:, dy * k + dx]
        y = acc[:, :, p: p + h, p: p + w]
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        return y.contiguous()
