"""First Order Motion Model networks (Siarohin et al., NeurIPS 2019) as plain torch modules
with the authors' checkpoint names; ``load_fomm`` reads their checkpoints strictly."""

from avatarify_app.models.fomm.checkpoint import check_state_dict, load_fomm, read_checkpoint
from avatarify_app.models.fomm.dense_motion import DenseMotionNetwork
from avatarify_app.models.fomm.generator import OcclusionAwareGenerator
from avatarify_app.models.fomm.geometry import inverse_2x2, matmul_2x2
from avatarify_app.models.fomm.keypoint_detector import KPDetector
from avatarify_app.models.fomm.params import build_models, default_config_path, load_model_params

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
