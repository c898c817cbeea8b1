"""Inference-only rewrites shared by the engines.

BatchNorm folding: a BatchNorm on running statistics right after a convolution is an affine map
per output channel, so it folds into the convolution's weights and bias (any nn.ConvNd).
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def fold_batchnorm(conv: nn.Module, norm: nn.Module) -> nn.Module:
    """A copy of ``conv`` (nn.Conv1d/2d/3d) equal to norm(conv(x)) with ``norm`` (a BatchNormNd) in
    eval mode."""
    scale = norm.weight.detach() / torch.sqrt(norm.running_var + norm.eps)
    fused = copy.deepcopy(conv)
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(norm.running_mean)
    with torch.no_grad():
        fused.weight.copy_(conv.weight.detach() * scale.view(-1, *([1] * (conv.weight.dim() - 1))))
        if fused.bias is None:
            fused.bias = nn.Parameter(torch.empty_like(bias))
        fused.bias.copy_((bias - norm.running_mean) * scale + norm.bias.detach())
    return fused
