"""The networks, one subpackage per model family, as plain torch modules whose attribute names
match the authors' checkpoint keys.

- ``models.fomm``: First Order Motion Model; ``load_fomm(checkpoint, model_params=None)``.
- ``models.liveportrait``: LivePortrait; ``load_liveportrait(folder, model_params=None)``,
  ``build_liveportrait(model_params=None)``.
- ``models.safe_load``: reading weight files without running code, for every family.

The FOMM names are re-exported here (``avatarify_app.models.load_fomm`` and friends), as they
were before the families got their own folders.
"""

from avatarify_app.models.fomm import (
    DenseMotionNetwork,
    KPDetector,
    OcclusionAwareGenerator,
    build_models,
    check_state_dict,
    default_config_path,
    inverse_2x2,
    load_fomm,
    load_model_params,
    matmul_2x2,
    read_checkpoint,
)
from avatarify_app.models.liveportrait import LivePortraitModels, build_liveportrait, load_liveportrait

__all__ = [
    "DenseMotionNetwork",
    "KPDetector",
    "LivePortraitModels",
    "OcclusionAwareGenerator",
    "build_liveportrait",
    "build_models",
    "check_state_dict",
    "default_config_path",
    "inverse_2x2",
    "load_fomm",
    "load_liveportrait",
    "load_model_params",
    "matmul_2x2",
    "read_checkpoint",
]
