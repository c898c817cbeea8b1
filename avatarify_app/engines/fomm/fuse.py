"""Inference-only rewrites of the FOMM modules that keep their outputs (to float rounding).

- BatchNorm folding (``engines.common.fuse.fold_batchnorm``) in every block but the
  pre-activation ``norm1`` of ResBlock2d, which acts on the residual input.
- Sub-pixel up blocks: nearest x2 upsampling followed by a 3x3 conv only ever combines a 2x2
  neighbourhood of the low-resolution input for each of the four output phases, so it equals
  one 2x2 conv with 4x the output channels on the low-resolution map plus a pixel shuffle:
  16 instead of 36 multiply-adds per input pixel and channel pair.

The rewritten copies are for running only; their state dicts no longer match checkpoints.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from avatarify_app.engines.common.fuse import fold_batchnorm
from avatarify_app.engines.fomm.winograd import WinogradResBlocks
from avatarify_app.models.fomm.blocks import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d

# For output phase a (0: even rows, 1: odd rows), which of the 3 kernel rows land on low-res
# tap 0 and tap 1 of the 2x2 window (rows r-1, r for a = 0; rows r, r+1 for a = 1).
_PHASE_TAPS = {0: ((0,), (1, 2)), 1: ((0, 1), (2,))}


class SubPixelUpBlock(nn.Module):
    """Same output as ``UpBlock2d`` (after BN folding): BxCinxHxW -> BxCoutx2Hx2W."""

    def __init__(self, block: UpBlock2d) -> None:
        super().__init__()
        conv = block.conv
        if conv.kernel_size != (3, 3) or conv.padding != (1, 1):
            raise ValueError("sub-pixel rewrite needs a 3x3 conv with padding 1")
        if not isinstance(block.norm, nn.Identity):
            conv = fold_batchnorm(conv, block.norm)
        w = conv.weight.detach()  # Cout x Cin x 3 x 3
        cout, cin = w.shape[:2]
        phases = []
        for a in (0, 1):
            for b in (0, 1):
                k = w.new_zeros(cout, cin, 2, 2)
                for ti, rows in enumerate(_PHASE_TAPS[a]):
                    for tj, cols in enumerate(_PHASE_TAPS[b]):
                        k[:, :, ti, tj] = w[:, :, list(rows)][:, :, :, list(cols)].sum(dim=(2, 3))
                phases.append(k)
        # Output channel order c * 4 + (2a + b), as pixel_shuffle expects.
        weight = torch.stack(phases, dim=1).reshape(cout * 4, cin, 2, 2)
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.bias = nn.Parameter(conv.bias.detach().repeat_interleave(4), requires_grad=False)
        self.cout = cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:]
        y = F.conv2d(F.pad(x, (1, 1, 1, 1)), self.weight, self.bias)  # Bx4Coutx(H+1)x(W+1)
        b = y.shape[0]
        y = y.view(b, self.cout, 2, 2, h + 1, w + 1)
        # Phase (a, b) reads window starts (a + i, b + j) of the padded input.
        rows = [torch.cat((y[:, :, a : a + 1, 0:1, a : a + h, 0:w],
                           y[:, :, a : a + 1, 1:2, a : a + h, 1 : w + 1]), dim=3) for a in (0, 1)]
        y = torch.cat(rows, dim=2).reshape(b, self.cout * 4, h, w)
        return F.relu(F.pixel_shuffle(y, 2))


def fuse_for_inference(module: nn.Module, subpixel: bool = True, winograd: bool = False) -> nn.Module:
    """A deep copy of ``module`` (eval mode) with BN folded and, optionally, sub-pixel up blocks
    and every chain of residual blocks (the generator's bottleneck) run by ``WinogradResBlocks``."""
    module = copy.deepcopy(module).eval()
    for name, child in list(module.named_modules()):
        if isinstance(child, (DownBlock2d, SameBlock2d, UpBlock2d)) and isinstance(child.norm, nn.BatchNorm2d):
            child.conv = fold_batchnorm(child.conv, child.norm)
            child.norm = nn.Identity()
        elif isinstance(child, ResBlock2d) and isinstance(child.norm2, nn.BatchNorm2d):
            child.conv1 = fold_batchnorm(child.conv1, child.norm2)
            child.norm2 = nn.Identity()
        if subpixel and isinstance(child, UpBlock2d):
            if not name:
                return SubPixelUpBlock(child)
            parent_name, _, attr = name.rpartition(".")
            parent = module.get_submodule(parent_name) if parent_name else module
            setattr(parent, attr, SubPixelUpBlock(child))
    if winograd:
        for name, child in list(module.named_modules()):
            if isinstance(child, nn.Sequential) and len(child) and all(isinstance(b, ResBlock2d) for b in child):
                if not name:
                    return WinogradResBlocks(list(child))
                parent_name, _, attr = name.rpartition(".")
                parent = module.get_submodule(parent_name) if parent_name else module
                setattr(parent, attr, WinogradResBlocks(list(child)))
    return module
