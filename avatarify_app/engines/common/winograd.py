"""Winograd F(4x4, 3x3) convolutions (Lavin & Gray 2016), shared by the engines.

A 4x4 output tile of a 3x3 convolution is A^T [(G g G^T) * (B^T d B)] A for the 6x6 input tile
d: the channel mixing becomes 36 matrix products over all tiles at once, 2.25 instead of 9
multiply-adds per output pixel and channel pair (4x fewer than a direct convolution), plus
per-channel transforms that cost a few percent of that when the channel counts are large.
Float32 results agree with the direct convolution to about 1e-5 relative.

``WinogradConv`` runs on ordinary NCHW / NCDHW tensors. A 3D convolution with a 3x3 spatial
kernel and kd depth taps is the sum over taps of 2D convolutions of depth-shifted slices, so in
the Winograd domain it is one matrix product against the kd neighbouring slices' transforms
(taps stacked along the input channels). The work is cut into chunks of tiles so that the
transformed tiles stay in cache between the three matrix products.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Interpolation points 0, +-1, +-2 and infinity.
BT = ((4, 0, -5, 0, 1, 0),
      (0, -4, -4, 1, 1, 0),
      (0, 4, -4, -1, 1, 0),
      (0, -2, -1, 2, 1, 0),
      (0, 2, -1, -2, 1, 0),
      (0, 4, 0, -5, 0, 1))
G = ((1 / 4, 0, 0),
     (-1 / 6, -1 / 6, -1 / 6),
     (-1 / 6, 1 / 6, -1 / 6),
     (1 / 24, 1 / 12, 1 / 6),
     (1 / 24, -1 / 12, 1 / 6),
     (0, 0, 1))
AT = ((1, 1, 1, 1, 1, 0),
      (0, 1, -1, 2, -2, 0),
      (0, 1, 1, 4, 4, 0),
      (0, 1, -1, 8, -8, 1))


def transform_weight(weight: torch.Tensor) -> torch.Tensor:
    """Cout x Cin x 3 x 3 kernels -> 6 x 6 x Cout x Cin (G g G^T per kernel) in float32 or
    float64 as the weight (a sum of 9 products: ~1e-7 relative in float32)."""
    dtype = torch.float64 if weight.dtype == torch.float64 else torch.float32
    g = torch.tensor(G, dtype=dtype, device=weight.device)
    cout, cin = weight.shape[:2]
    u = torch.kron(g, g) @ weight.detach().to(dtype).reshape(cout * cin, 9).t()  # 36 x (Cout Cin)
    return u.view(6, 6, cout, cin)


def input_transform() -> torch.Tensor:
    """36 x 36: row r * 6 + s of B^T d B from the tile read row-major."""
    bt = torch.tensor(BT, dtype=torch.float64)
    return torch.kron(bt, bt)


def output_transform() -> torch.Tensor:
    """16 x 36: output pixel p * 4 + q of A^T m A."""
    at = torch.tensor(AT, dtype=torch.float64)
    return torch.kron(at, at)


class WinogradConv(nn.Module):
    """Same output as a 3x3 convolution with stride 1 and padding 1 (2D weight Cout x Cin x 3 x 3,
    input BxCinxHxW) or a 3D one with kd x 3 x 3 kernels and padding (kd // 2, 1, 1) (input
    BxCinxDxHxW), optionally followed by ReLU or LeakyReLU (``activation``).

    ``tiles_per_chunk`` bounds the 4x4 output tiles handled per step (memory traffic vs matrix
    product size); H and W need not be multiples of 4.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, activation: str | None = None,
                 negative_slope: float = 0.01, tiles_per_chunk: int = 1024) -> None:
        super().__init__()
        if weight.dim() == 4:
            weight = weight.unsqueeze(2)
        if weight.dim() != 5 or weight.shape[3:] != (3, 3) or weight.shape[2] % 2 == 0:
            raise ValueError(f"WinogradConv needs 3x3 (or kd x 3 x 3, kd odd) kernels, got {tuple(weight.shape)}")
        if activation not in (None, "relu", "leaky_relu"):
            raise ValueError(f"unknown activation {activation!r}")
        cout, cin, kd = weight.shape[:3]
        self.cout, self.cin, self.kd = cout, cin, kd
        # 36 x Cout x (kd Cin): depth tap j multiplies the j-th neighbouring slice.
        u = transform_weight(weight.transpose(1, 2).reshape(cout, kd * cin, 3, 3))
        self.register_buffer("weight", u.reshape(36, cout, kd * cin).float().contiguous())
        self.register_buffer("bias", (bias.detach().clone() if bias is not None else torch.zeros(cout)).float())
        self.register_buffer("transform_in_kernel", input_transform().float().view(36, 1, 6, 6))
        self.register_buffer("transform_out", output_transform().float())
        self.activation = activation
        self.negative_slope = negative_slope
        self.tiles_per_chunk = tiles_per_chunk

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.dim() == 4
        if flat:
            x = x.unsqueeze(2)
        b, c, d, h, w = x.shape
        if c != self.cin:
            raise ValueError(f"expected {self.cin} input channels, got {c}")
        th, tw = -(-h // 4), -(-w // 4)
        pd = self.kd // 2
        out = x.new_empty(b, self.cout, d, 4 * th, 4 * tw)
        # Chunks: several slices when a slice has few tiles, else bands of tile rows of one slice.
        per_slice = th * tw
        if per_slice <= self.tiles_per_chunk:
            nz, nt = max(1, self.tiles_per_chunk // per_slice), th
        else:
            nz, nt = 1, max(1, self.tiles_per_chunk // tw)
        for i in range(b):
            # Depth-major and zero-padded, one copy: D' x C x (4 th + 2) x (4 tw + 2).
            xp = F.pad(x[i].transpose(0, 1), (1, 4 * tw - w + 1, 1, 4 * th - h + 1, 0, 0, pd, pd))
            for z0 in range(0, d, nz):
                z1 = min(d, z0 + nz)
                for t0 in range(0, th, nt):
                    self._chunk(xp, out[i], z0, z1, t0, min(th, t0 + nt))
        if 4 * th != h or 4 * tw != w:
            out = out[..., :h, :w]
        return out.squeeze(2) if flat else out

    def _chunk(self, xp: torch.Tensor, out: torch.Tensor, z0: int, z1: int, t0: int, t1: int) -> None:
        """Output slices z0..z1-1, tile rows t0..t1-1 of one batch item (xp: D' x C x H' x W')."""
        c, kd = self.cin, self.kd
        nz, nt = z1 - z0, t1 - t0
        src = xp[z0: z1 + kd - 1, :, 4 * t0: 4 * t1 + 2]  # nz' x C x rows x W'
        # B^T d B of every 6x6 tile (stride 4) as a convolution: nz' x C x 36 x n.
        v = F.conv2d(src.reshape(-1, 1, *src.shape[2:]), self.transform_in_kernel, stride=4)
        tw = v.shape[-1]
        n = nt * tw
        v = v.view(nz + kd - 1, c, 36, n)
        if nz > 1 and n < 128:  # few tiles a slice: one product over all slices (depth im2col)
            taps = torch.stack([v[j: j + kd] for j in range(nz)], dim=3)  # kd x C x 36 x nz x n
            m = torch.bmm(self.weight, taps.permute(2, 0, 1, 3, 4).reshape(36, kd * c, nz * n))
            self._output(m, out, z0, z1, t0, t1)
            return
        for j in range(nz):
            # The kd neighbouring slices as one operand: 36 x (kd C) x n, a strided view.
            m = torch.bmm(self.weight, v[j: j + kd].permute(2, 0, 1, 3).reshape(36, kd * c, n))
            self._output(m, out, z0 + j, z0 + j + 1, t0, t1)

    def _output(self, m: torch.Tensor, out: torch.Tensor, z0: int, z1: int, t0: int, t1: int) -> None:
        """A^T m A for 36 x Cout x (nz nt tw) products, + bias and activation, into out (Cout x D x H x W)."""
        nz, nt = z1 - z0, t1 - t0
        y = torch.mm(self.transform_out, m.reshape(36, -1)).view(4, 4, self.cout, nz, nt, -1)
        tw = y.shape[-1]
        y += self.bias.view(1, 1, -1, 1, 1, 1)
        if self.activation == "relu":
            torch.relu_(y)
        elif self.activation == "leaky_relu":
            F.leaky_relu_(y, self.negative_slope)
        out[:, z0:z1, 4 * t0: 4 * t1].view(self.cout, nz, nt, 4, tw, 4).copy_(y.permute(2, 3, 4, 0, 5, 1))
