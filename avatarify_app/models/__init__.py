"""The networks, one subpackage per model family, as plain torch modules whose attribute names
match the authors' checkpoint keys.

- ``models.fomm``: First Order Motion Model; ``load_fomm(checkpoint, model_params=None)``.
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
