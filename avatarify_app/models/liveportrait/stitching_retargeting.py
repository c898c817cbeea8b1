"""Stitching and retargeting networks S, R_eye, R_lip (LivePortrait, Guo et al. 2024, Sec. 3.2):
small MLPs on flattened implicit keypoints.

- stitching: [x_s, x_d] (2 * 3N) -> 3N keypoint offsets + (tx, ty), so an animated crop
  pasted back into the full portrait stays aligned at the shoulders;
- eye: [x_s, eye ratios] (3N + 3) -> 3N offsets that open or close the eyes;
- lip: [x_s, lip ratios] (3N + 2) -> 3N offsets that open or close the mouth.
``avatarify_app.motion`` applies them.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import nn


class StitchingRetargetingNetwork(nn.Module):
    """B x input_size -> B x output_size: Linear and ReLU per hidden size, then a Linear."""

    def __init__(self, input_size: int, hidden_sizes: Sequence[int], output_size: int) -> None:
        super().__init__()
        widths = [input_size, *hidden_sizes]
        layers: list[nn.Module] = []
        for fan_in, fan_out in pairwise(widths):
            layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], output_size))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)
