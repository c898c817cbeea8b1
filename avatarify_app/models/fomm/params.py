"""``model_params`` in the authors' layout: read, checked and turned into modules.

The layout is ``common_params`` (num_kp, num_channels, estimate_jacobian) shared by both
networks, ``kp_detector_params`` and ``generator_params`` (with ``dense_motion_params``).
A YAML file may hold it under ``model_params`` (the authors' config files, whose other
sections are ignored) or be the mapping itself.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from avatarify_app.errors import ConfigError
from avatarify_app.models.fomm.dense_motion import DenseMotionNetwork
from avatarify_app.models.fomm.generator import OcclusionAwareGenerator
from avatarify_app.models.fomm.keypoint_detector import KPDetector
from avatarify_app.models.model_params import check_keys, read_model_params

DEFAULT_CONFIG_NAME = "vox-256.yaml"
SECTIONS = ("common_params", "kp_detector_params", "generator_params")
CONFIG_HINT = "Use the YAML config the checkpoint was trained with (the authors' config/*.yaml work as they are)."


def default_config_path() -> Path:
    """The shipped vox-256 config (package data)."""
    return Path(str(resources.files("avatarify_app") / "configs" / DEFAULT_CONFIG_NAME))


def load_model_params(source: str | Path | Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return a checked deep copy of ``model_params`` from a mapping, a YAML path or the default."""
    params, origin = read_model_params(default_config_path() if source is None else source, SECTIONS, CONFIG_HINT)
    params = copy.deepcopy(dict(params))
    check_keys(origin, "kp_detector_params", params["kp_detector_params"], KPDetector, CONFIG_HINT)
    gen = dict(params["generator_params"])
    check_keys(origin, "generator_params", gen, OcclusionAwareGenerator, CONFIG_HINT)
    if gen.get("dense_motion_params") is not None:
        check_keys(origin, "dense_motion_params", gen["dense_motion_params"], DenseMotionNetwork, CONFIG_HINT)
    return params


def build_models(model_params: Mapping[str, Any]) -> tuple[KPDetector, OcclusionAwareGenerator]:
    """Fresh (randomly initialised) kp_detector and generator for checked ``model_params``."""
    common = dict(model_params["common_params"])
    try:
        kp_detector = KPDetector(**model_params["kp_detector_params"], **common)
        generator = OcclusionAwareGenerator(**model_params["generator_params"], **common)
    except TypeError as err:
        raise ConfigError(f"model_params do not describe a FOMM model: {err}", CONFIG_HINT) from err
    return kp_detector, generator
