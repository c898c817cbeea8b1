"""LivePortrait's SPADE decoder G rewritten for CPU inference, same outputs to float rounding.

What the rewrite exploits (each exact in real arithmetic):

- Every SPADE's shared conv reads the same segmap (the warped feature map, 64x64), resized by
  nearest neighbour to its block's resolution (x1, x2, x4). A 3x3 conv of a map upsampled by f
  gives, for each output phase, a small conv of the low-resolution map whose taps are sums of
  the 3x3 taps (``phase_kernels``); phases with equal kernels share one result. At x4 the
  3x3 = 9 taps per output pixel become 25 taps per 16 output pixels, at x2 16 per 4, all run on
  the 64x64 map. The three shared convs of a block are one conv with their outputs stacked.
- Instance norm commutes with nearest upsampling, so an up block normalises at the lower
  resolution and upsamples the normalised map.
- gamma and beta of one SPADE are one conv with stacked outputs; the "1 +" of the modulation
  is folded into gamma's bias.
- The learned shortcut conv_s (1x1, linear) of beta_s is a 3x3 conv whose weights are conv_s
  composed with beta's: conv_s(n (1 + gamma) + beta) = conv_s(n (1 + gamma)) + (W_s W_beta) * a,
  with fewer output channels than beta had.
- Spectral normalisation is applied to the weights once.
- 3x3 convs with many channels run as Winograd F(4x4, 3x3) (``winograd``; ``_fast_ops``).

Shapes follow ``SPADEDecoder``: feature BxLx64x64 -> image Bx3xHxW.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from avatarify_app.engines.liveportrait._fast_ops import conv_module
from avatarify_app.models.liveportrait.spade import SPADE, SPADEResnetBlock
from avatarify_app.models.liveportrait.spade_generator import SPADEDecoder
from avatarify_app.models.liveportrait.spectral_norm import SpectralNormConv2d

LRELU = 0.2
IN_EPS = 1e-5


def _conv_weight(conv: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(weight, bias) of an nn.Conv2d or SpectralNormConv2d (normalised once), detached copies."""
    with torch.no_grad():
        if isinstance(conv, SpectralNormConv2d):
            if conv.dilation != 1:
                raise ValueError("the fast SPADE decoder handles dilation 1 only")
            w = conv.normalized_weight()
        else:
            w = conv.weight
        bias = None if conv.bias is None else conv.bias.detach().clone()
        return w.detach().clone(), bias


def _phase_taps(factor: int) -> list[tuple[list[int], int, list[list[int]]]]:
    """1D classes of output phases for a 3x3 tap row over a nearest-upsampled axis.

    Output pixel f*r + p reads upsampled pixels f*r + p + d (d = -1, 0, 1), i.e. low-resolution
    pixel r + floor((p + d) / f). Returns [(phases, first_offset, taps_per_offset)] where
    taps_per_offset[j] lists the kernel taps (0, 1, 2) landing on offset first_offset + j;
    phases with identical tap maps form one class.
    """
    classes: dict[tuple, list[int]] = {}
    for p in range(factor):
        offsets = [(p + d) // factor for d in (-1, 0, 1)]
        first = min(offsets)
        groups = tuple(tuple(t for t in range(3) if offsets[t] == first + j)
                       for j in range(max(offsets) - first + 1))
        classes.setdefault((first, groups), []).append(p)
    return [(phases, first, [list(g) for g in groups]) for (first, groups), phases in classes.items()]


def phase_kernels(weight: torch.Tensor, factor: int) -> list[tuple[list[int], list[int], int, int, torch.Tensor]]:
    """The 3x3 conv (padding 1) of a map upsampled by ``factor`` (nearest) as convs of the
    low-resolution map, one per class of output phases.

    Returns [(row_phases, col_phases, first_row_offset, first_col_offset, kernel)] with kernel
    Cout x Cin x kh x kw (kh, kw in 1..3): output pixel (f*r + p, f*c + q) for p in row_phases,
    q in col_phases equals the valid correlation of the kernel with the low-resolution map
    padded so that tap (0, 0) sits at offset (first_row_offset, first_col_offset).
    """
    rows = _phase_taps(factor)

    def selector(groups: list[list[int]]) -> torch.Tensor:  # offsets x 3 taps, 1 where a tap lands
        sel = torch.zeros(len(groups), 3, dtype=torch.float64)
        for j, taps in enumerate(groups):
            sel[j, taps] = 1
        return sel

    w = weight.detach().double()
    out = []
    for row_phases, r0, row_groups in rows:
        for col_phases, c0, col_groups in rows:
            k = torch.einsum("ij,ocjl,ml->ocim", selector(row_groups), w, selector(col_groups))
            out.append((row_phases, col_phases, r0, c0, k.to(weight.dtype)))
    return out


class UpsampledConv(nn.Module):
    """3x3 conv (padding 1) + ReLU of ``nearest_upsample(x, factor)``, computed at x's resolution:
    BxCinxHxW -> BxCoutx(fH)x(fW)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, factor: int) -> None:
        super().__init__()
        self.factor = factor
        self.cout = weight.shape[0]
        self.classes = []
        for i, (row_phases, col_phases, r0, c0, k) in enumerate(phase_kernels(weight, factor)):
            self.register_buffer(f"kernel{i}", k.contiguous())
            self.classes.append((row_phases, col_phases, r0, c0, k.shape[2], k.shape[3]))
        self.register_buffer("bias", bias.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        f = self.factor
        padded = F.pad(x, (1, 1, 1, 1))
        out = x.new_empty(b, self.cout, h, f, w, f)
        for i, (row_phases, col_phases, r0, c0, kh, kw) in enumerate(self.classes):
            window = padded[:, :, 1 + r0: 1 + r0 + h + kh - 1, 1 + c0: 1 + c0 + w + kw - 1]
            y = F.relu(F.conv2d(window, getattr(self, f"kernel{i}"), self.bias))  # B x Cout x H x W
            for p in row_phases:
                for q in col_phases:
                    out[:, :, :, p, :, q] = y
        return out.view(b, self.cout, h * f, w * f)


class _ModulationConv(nn.Module):
    """SPADE's gamma and beta convs as one: actv -> (1 + gamma, beta), each BxCxHxW."""

    def __init__(self, norm: SPADE, winograd: bool | str) -> None:
        super().__init__()
        wg, bg = _conv_weight(norm.mlp_gamma)
        wb, bb = _conv_weight(norm.mlp_beta)
        self.channels = wg.shape[0]
        self.conv = conv_module(torch.cat([wg, wb]), torch.cat([bg + 1, bb]), winograd=winograd)

    def forward(self, actv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.conv(actv)
        return y[:, : self.channels], y[:, self.channels:]


def instance_norm(x: torch.Tensor) -> torch.Tensor:
    return F.instance_norm(x, eps=IN_EPS)


def _upsample2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


class FastSPADEBlock(nn.Module):
    """A ``SPADEResnetBlock`` whose shared-conv activations arrive precomputed.

    forward(x, actv_0, actv_1, actv_s): x is BxfinxHxW, or Bxfinx(H/2)x(W/2) with ``upsample``
    (the block then sees nearest_upsample(x, 2), as the decoder's up blocks do).
    """

    def __init__(self, block: SPADEResnetBlock, upsample: bool, winograd: bool | str) -> None:
        super().__init__()
        self.upsample = upsample
        self.learned_shortcut = block.learned_shortcut
        self.mod_0 = _ModulationConv(block.norm_0, winograd)
        self.mod_1 = _ModulationConv(block.norm_1, winograd)
        self.conv_0 = conv_module(*_conv_weight(block.conv_0), winograd=winograd)
        self.conv_1 = conv_module(*_conv_weight(block.conv_1), winograd=winograd)
        if self.learned_shortcut:
            ws, _ = _conv_weight(block.conv_s)  # fout x fin x 1 x 1, no bias
            ws = ws[:, :, 0, 0]
            wg, bg = _conv_weight(block.norm_s.mlp_gamma)
            wb, bb = _conv_weight(block.norm_s.mlp_beta)
            self.register_buffer("ws", ws.contiguous())
            self.gamma_s = conv_module(wg, bg + 1, winograd=winograd)
            # conv_s(beta_s) = (W_s W_beta) * actv_s + W_s b_beta: a 3x3 conv straight to fout.
            self.beta_s = conv_module(torch.einsum("oc,cikl->oikl", ws, wb), ws @ bb, winograd=winograd)

    def forward(self, x: torch.Tensor, actv_0: torch.Tensor, actv_1: torch.Tensor,
                actv_s: torch.Tensor | None) -> torch.Tensor:
        normalized = instance_norm(x)
        if self.upsample:
            normalized = _upsample2(normalized)
        gamma, beta = self.mod_0(actv_0)
        dx = F.leaky_relu(torch.addcmul(beta, normalized, gamma), LRELU)
        dx = self.conv_0(dx)
        gamma, beta = self.mod_1(actv_1)
        dx = F.leaky_relu(torch.addcmul(beta, instance_norm(dx), gamma), LRELU)
        dx = self.conv_1(dx)
        if self.learned_shortcut:
            gamma_s = self.gamma_s(actv_s)
            shortcut = self.beta_s(actv_s)
            b, c, h, w = gamma_s.shape
            scaled = (normalized * gamma_s).view(b, c, h * w)
            shortcut = shortcut + torch.matmul(self.ws, scaled).view(b, -1, h, w)
        else:
            shortcut = _upsample2(x) if self.upsample else x
        return shortcut + dx


class FastSPADEDecoder(nn.Module):
    """Same mapping as ``SPADEDecoder`` (feature BxLx64x64 -> image in (0, 1))."""

    def __init__(self, decoder: SPADEDecoder, winograd: bool | str = "auto") -> None:
        super().__init__()
        decoder = decoder.eval()
        middle = decoder.middle_blocks()
        self.num_middle = len(middle)
        self.upscale = decoder.upscale
        self.fc = conv_module(*_conv_weight(decoder.fc), winograd=winograd)
        # Shared convs: all middle SPADEs in one conv at 64x64; each up block's three in one
        # phase-decomposed conv (x2 for up_0, x4 for up_1).
        shared = [self._shared(block) for block in middle]
        self.hidden = shared[0][0].shape[0] // len(self._norms(middle[0]))
        self.shared = conv_module(torch.cat([w for w, _ in shared]), torch.cat([b for _, b in shared]),
                                  activation="relu", winograd=winograd)
        self.shared_up = nn.ModuleList(UpsampledConv(*self._shared(block), factor=2 ** (i + 1))
                                       for i, block in enumerate((decoder.up_0, decoder.up_1)))
        self.middle = nn.ModuleList(FastSPADEBlock(block, False, winograd) for block in middle)
        self.up = nn.ModuleList(FastSPADEBlock(block, True, winograd) for block in (decoder.up_0, decoder.up_1))
        conv_img = decoder.conv_img if decoder.upscale == 1 else decoder.conv_img[0]
        self.conv_img = conv_module(*_conv_weight(conv_img), winograd=winograd)

    @staticmethod
    def _norms(block: SPADEResnetBlock) -> list[SPADE]:
        return [block.norm_0, block.norm_1] + ([block.norm_s] if block.learned_shortcut else [])

    def _shared(self, block: SPADEResnetBlock) -> tuple[torch.Tensor, torch.Tensor]:
        pairs = [_conv_weight(norm.mlp_shared[0]) for norm in self._norms(block)]
        return torch.cat([w for w, _ in pairs]), torch.cat([b for _, b in pairs])

    def _split(self, actv: torch.Tensor, block: FastSPADEBlock) -> tuple:
        k = self.hidden
        parts = [actv[:, i * k: (i + 1) * k] for i in range(actv.shape[1] // k)]
        return parts[0], parts[1], (parts[2] if block.learned_shortcut else None)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        seg = feature  # B x L x 64 x 64
        x = self.fc(seg)
        actv = self.shared(seg)
        start = 0
        for block in self.middle:
            width = self.hidden * (3 if block.learned_shortcut else 2)
            x = block(x, *self._split(actv[:, start: start + width], block))
            start += width
        del actv
        for block, shared in zip(self.up, self.shared_up, strict=True):
            x = block(x, *self._split(shared(seg), block))
        x = self.conv_img(F.leaky_relu(x, LRELU))
        if self.upscale == 2:
            x = F.pixel_shuffle(x, 2)
        return torch.sigmoid(x)
