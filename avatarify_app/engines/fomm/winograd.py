"""Winograd F(4x4, 3x3) convolutions for the generator's residual bottleneck.

Lavin & Gray (2016); the transform matrices are ``engines.common.winograd``'s: 2.25 instead of
9 multiply-adds per output pixel and channel pair plus cheap per-channel transforms, float32
results within about 1e-5 relative of the direct convolution.

The bottleneck (six residual blocks, twelve 256-channel convolutions at 64x64 for vox-256,
two thirds of the per-frame FLOPs) runs in a blocked layout where tiles are gathered by
shifting whole planes, so the only transposes are one on entry and one on exit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from avatarify_app.engines.common.winograd import input_transform, output_transform, transform_weight

# Tile row r of output-tile row t reads input row 4t - 1 + r: row 3 of block t - 1 (r = 0), rows
# 0..3 of block t (r = 1..4) or row 0 of block t + 1 (r = 5). Same for columns.
_GROUPS = ((-1, slice(3, 4), (0,)), (0, slice(0, 4), (1, 2, 3, 4)), (1, slice(0, 1), (5,)))


def _shift(x: torch.Tensor, dt: int, du: int) -> torch.Tensor:
    """out[..., t, u] = x[..., t + dt, u + du], zero outside (one Pad, negative pads crop)."""
    if dt == 0 and du == 0:
        return x
    return F.pad(x, (-du, du, -dt, dt))


class TiledWinogradConv(nn.Module):
    """3x3 conv (padding 1) from and to the blocked layout 16xBxCxthxtw, where plane p * 4 + q holds
    the pixels (4t + p, 4u + q). In this layout the 6x6 input tiles are nine shifted groups of
    whole planes, and the output transform writes the layout directly: no transposes at all.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        if conv.kernel_size != (3, 3) or conv.padding != (1, 1) or conv.stride != (1, 1) or conv.groups != 1:
            raise ValueError("Winograd F(4x4, 3x3) needs a 3x3 conv with padding 1, stride 1, groups 1")
        cout, cin = conv.weight.shape[:2]
        u = transform_weight(conv.weight).reshape(36, 1, cout, cin)
        self.weight_winograd = nn.Parameter(u.float().contiguous(), requires_grad=False)
        order = []
        for _, _, rows in _GROUPS:
            for _, _, cols in _GROUPS:
                order += [r * 6 + s for r in rows for s in cols]
        self.register_buffer("transform_in", input_transform()[:, order].float().contiguous())
        self.register_buffer("transform_out", output_transform().float())  # 16x36, rows p * 4 + q
        bias = conv.bias.detach().clone() if conv.bias is not None else torch.zeros(cout)
        self.bias = nn.Parameter(bias.view(1, 1, cout, 1, 1), requires_grad=False)
        self.cout = cout

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        _, b, c, th, tw = s.shape
        planes = s.reshape(4, 4, b, c, th, tw)
        parts = []
        for dt, rows, _ in _GROUPS:
            for du, cols, _ in _GROUPS:
                part = _shift(planes[rows, cols], dt, du)
                parts.append(part.reshape(-1, b * c * th * tw))
        d = torch.cat(parts, dim=0)  # 36x(B C T) in transform_in's column order
        v = torch.matmul(self.transform_in, d).reshape(36, b, c, th * tw)
        m = torch.matmul(self.weight_winograd, v)  # 36xBxCoutxT
        y = torch.matmul(self.transform_out, m.reshape(36, -1)).reshape(16, b, self.cout, th, tw)
        return y + self.bias


def to_blocks(x: torch.Tensor) -> torch.Tensor:
    """BxCxHxW -> 16xBxCx(H/4)x(W/4) (plane p * 4 + q = pixels (4t + p, 4u + q))."""
    b, c, h, w = x.shape
    return x.reshape(b, c, h // 4, 4, w // 4, 4).permute(3, 5, 0, 1, 2, 4).reshape(16, b, c, h // 4, w // 4)


def from_blocks(s: torch.Tensor) -> torch.Tensor:
    """Inverse of ``to_blocks``."""
    _, b, c, th, tw = s.shape
    return s.reshape(4, 4, b, c, th, tw).permute(2, 3, 4, 0, 5, 1).reshape(b, c, th * 4, tw * 4)


class WinogradResBlocks(nn.Module):
    """A chain of pre-activation ResBlock2d (norm2 already folded into conv1) run in the blocked
    layout: one space-to-depth on entry, one depth-to-space on exit, Winograd convs between;
    BatchNorm, ReLU and the residual sums are per-pixel and work in any layout."""

    def __init__(self, blocks) -> None:
        super().__init__()
        self.fallback = nn.Sequential(*blocks)
        scales, shifts, convs = [], [], []
        for block in blocks:
            if not isinstance(block.norm2, nn.Identity):
                raise ValueError("fold norm2 into conv1 first (fuse_for_inference)")
            n = block.norm1
            scale = n.weight.detach() / torch.sqrt(n.running_var + n.eps)
            scales.append(scale.view(1, 1, -1, 1, 1))
            shifts.append((n.bias.detach() - n.running_mean * scale).view(1, 1, -1, 1, 1))
            convs.append(nn.ModuleList([TiledWinogradConv(block.conv1), TiledWinogradConv(block.conv2)]))
        self.convs = nn.ModuleList(convs)
        for i, (sc, sh) in enumerate(zip(scales, shifts, strict=True)):
            self.register_buffer(f"scale{i}", sc.clone())
            self.register_buffer(f"shift{i}", sh.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[2] % 4 or x.shape[3] % 4:
            return self.fallback(x)
        s = to_blocks(x)
        for i, (conv1, conv2) in enumerate(self.convs):
            y = F.relu(s * getattr(self, f"scale{i}") + getattr(self, f"shift{i}"))
            y = conv2(F.relu(conv1(y)))
            s = s + y
        return from_blocks(s)
