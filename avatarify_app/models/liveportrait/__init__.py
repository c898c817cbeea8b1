"""LivePortrait networks (Guo et al. 2024, "LivePortrait: Efficient Portrait Animation with
Stitching and Retargeting Control") as plain torch modules with the authors' checkpoint names;
``load_liveportrait`` reads their released folder strictly and safely.

- ``AppearanceFeatureExtractor`` (F): image -> 3D feature volume.
- ``MotionExtractor`` (M, ConvNeXt-V2): image -> canonical keypoints, pose bins, t, exp, scale.
- ``WarpingNetwork`` (W, with ``DenseMotionNetwork``): volume + keypoints -> warped 2D features.
- ``SPADEDecoder`` (G): warped features -> image (512 px in the release).
- ``StitchingRetargetingNetwork`` (S, R): the stitching, lip and eye MLPs.
"""

from avatarify_app.models.liveportrait.appearance_feature_extractor import AppearanceFeatureExtractor
from avatarify_app.models.liveportrait.checkpoint import load_liveportrait, read_retargeting
from avatarify_app.models.liveportrait.dense_motion import DenseMotionNetwork
from avatarify_app.models.liveportrait.motion_extractor import MotionExtractor
from avatarify_app.models.liveportrait.params import (
    LivePortraitModels,
    build_liveportrait,
    default_config_path,
    load_model_params,
)
from avatarify_app.models.liveportrait.spade_generator import SPADEDecoder
from avatarify_app.models.liveportrait.spectral_norm import SpectralNormConv2d
from avatarify_app.models.liveportrait.stitching_retargeting import StitchingRetargetingNetwork
from avatarify_app.models.liveportrait.warping_network import WarpingNetwork

__all__ = [
    "AppearanceFeatureExtractor",
    "DenseMotionNetwork",
    "LivePortraitModels",
    "MotionExtractor",
    "SPADEDecoder",
    "SpectralNormConv2d",
    "StitchingRetargetingNetwork",
    "WarpingNetwork",
    "build_liveportrait",
    "default_config_path",
    "load_liveportrait",
    "load_model_params",
    "read_retargeting",
]
