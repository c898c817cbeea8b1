"""Motion extractor M (LivePortrait, Guo et al. 2024, Sec. 3.1): one network predicts the
canonical implicit keypoints x_c, head pose (pitch, yaw, roll as 66-bin logits), translation t,
expression deformation delta and scale s of a face image; ``avatarify_app.motion`` turns them
into driving keypoints x = s * (x_c R + delta) + t (their Eq. 2).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from avatarify_app.models.liveportrait.convnextv2 import TINY_DEPTHS, TINY_DIMS, ConvNeXtV2

BACKBONES = ("convnextv2_tiny", "convnextv2")


class MotionExtractor(nn.Module):
    """image Bx3x256x256 in [0, 1] -> {'pitch','yaw','roll': Bx66, 't': Bx3, 'exp': Bx3N,
    'scale': Bx1, 'kp': Bx3N}.

    ``backbone``: ``convnextv2_tiny`` (the released one: depths 3-3-9-3, widths 96-768) or
    ``convnextv2``; ``depths`` / ``dims`` (four stage depths and widths) shape a reduced
    backbone and default to the tiny one. ``num_kp`` defaults to 24 as in the authors' backbone;
    their models.yaml sets 21.
    """

    def __init__(self, num_kp: int = 24, backbone: str = "convnextv2_tiny",
                 depths: Sequence[int] | None = None, dims: Sequence[int] | None = None) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown motion extractor backbone {backbone!r} (known: {', '.join(BACKBONES)})")
        depths = TINY_DEPTHS if depths is None else tuple(depths)
        dims = TINY_DIMS if dims is None else tuple(dims)
        if len(depths) != 4 or len(dims) != 4:
            raise ValueError(f"depths and dims need four stages each, got {list(depths)} and {list(dims)}")
        self.num_kp = num_kp
        self.detector = ConvNeXtV2(num_kp=num_kp, depths=depths, dims=dims)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.detector(x)
