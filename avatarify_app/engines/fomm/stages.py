"""The per-frame FOMM computation as three modules with fixed tensor signatures.

The same three stages run eagerly (torch backend) or exported to ONNX (onnx backend), and
their boundaries are the bench's stages. Source-derived tensors (keypoints, downsampled
source, encoder features) are *inputs*, never constants, so one exported graph serves every
avatar. Optional parts are made uniform without changing results: a detector without
Jacobians reports identity matrices (J = I leaves the local motions exactly as without J) and
a generator without an occlusion map gets an all-ones map (multiplying by 1 is exact).
"""

from __future__ import annotations

import torch
from torch import nn

from avatarify_app.models.fomm.dense_motion import DenseMotionNetwork
from avatarify_app.models.fomm.generator import OcclusionAwareGenerator, apply_occlusion, warp
from avatarify_app.models.fomm.keypoint_detector import KPDetector


class KeypointStage(nn.Module):
    """image Bx3xHxW in [0, 1] -> (value BxKx2, jacobian BxKx2x2)."""

    input_names = ("image",)
    output_names = ("value", "jacobian")

    def __init__(self, kp_detector: KPDetector) -> None:
        super().__init__()
        self.kp_detector = kp_detector

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        kp = self.kp_detector(image)
        value = kp["value"]
        jac = kp.get("jacobian")
        if jac is None:
            eye = torch.eye(2, dtype=value.dtype, device=value.device)
            jac = eye.expand(*value.shape[:2], 2, 2) + value.new_zeros(*value.shape[:2], 1, 1)
        return value, jac


class MotionStage(nn.Module):
    """(small Bx3xhxw, driving value/jacobian, source value/jacobian) ->
    (deformation Bxhxwx2, occlusion Bx1xhxw)."""

    input_names = ("small", "driving_value", "driving_jacobian", "source_value", "source_jacobian")
    output_names = ("deformation", "occlusion")

    def __init__(self, dense_motion: DenseMotionNetwork) -> None:
        super().__init__()
        self.dense_motion = dense_motion

    def forward(self, small, driving_value, driving_jacobian, source_value, source_jacobian):
        motion = self.dense_motion.motion(small, {"value": driving_value, "jacobian": driving_jacobian},
                                          {"value": source_value, "jacobian": source_jacobian})
        occlusion = motion.get("occlusion_map")
        if occlusion is None:
            occlusion = torch.ones_like(motion["mask"][:, :1])
        return motion["deformation"], occlusion


class DecodeStage(nn.Module):
    """(features xi, deformation, occlusion) -> prediction Bx3xHxW in [0, 1] (Eq. (9) then decoder)."""

    input_names = ("features", "deformation", "occlusion")
    output_names = ("prediction",)

    def __init__(self, generator: OcclusionAwareGenerator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, features, deformation, occlusion):
        out = apply_occlusion(warp(features, deformation), occlusion)
        return self.generator.decode(out)
