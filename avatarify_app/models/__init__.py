"""First Order Motion Model networks as plain torch modules with the authors' checkpoint names.

``load_fomm(checkpoint, model_params=None)`` is the entry point; ``build_models`` gives
randomly initialised networks for any ``model_params`` in the authors' layout.
"""

from avatarify_app.models.checkpoint import check_state_dict, load_fomm, read_checkpoint
from avatarify_app.models.dense_motion import DenseMotionNetwork
from avatarify_app.models.generator import OcclusionAwareGenerator
from avatarify_app.models.geometry import inverse_2x2, matmul_2x2
from avatarify_app.models.keypoint_detector import KPDetector
from avatarify_app.models.params import build_models, default_config_path, load_model_params

__all__ = [
    "DenseMotionNetwork",
    "KPDetector",
    "OcclusionAwareGenerator",
    "build_models",
    "check_state_dict",
    "default_config_path",
    "inverse_2x2",
    "load_fomm",
    "load_model_params",
    "matmul_2x2",
    "read_checkpoint",
]
