"""``model_params`` in the authors' layout: read, checked and turned into modules.

The layout is ``common_params`` (num_kp, num_channels, estimate_jacobian) shared by both
networks, ``kp_detector_params`` and ``generator_params`` (with ``dense_motion_params``).
A YAML file may hold it under ``model_params`` (the authors' config files, whose other
sections are ignored) or be the mapping itself.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from avatarify_app.errors import ConfigError
from avatarify_app.models.fomm.dense_motion import DenseMotionNetwork
from avatarify_app.models.fomm.generator import OcclusionAwareGenerator
from avatarify_app.models.fomm.keypoint_detector import KPDetector

DEFAULT_CONFIG_NAME = "vox-256.yaml"
SECTIONS = ("common_params", "kp_detector_params", "generator_params")
CONFIG_HINT = "Use the YAML config the checkpoint was trained with (the authors' config/*.yaml work as they are)."


def default_config_path() -> Path:
    """The shipped vox-256 config (package data)."""
    return Path(str(resources.files("avatarify_app") / "configs" / DEFAULT_CONFIG_NAME))


def load_model_params(source: str | Path | Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return a checked deep copy of ``model_params`` from a mapping, a YAML path or the default."""
    if source is None:
        source = default_config_path()
    if isinstance(source, (str, Path)):
        data = _read_yaml(Path(source))
        origin = str(source)
    elif isinstance(source, Mapping):
        data, origin = source, "model_params"
    else:
        raise ConfigError(f"model_params must be a mapping or a YAML path, got {type(source).__name__}")
    params = data.get("model_params", data) if isinstance(data, Mapping) else None
    if not isinstance(params, Mapping):
        raise ConfigError(f"{origin}: no model_params mapping found.", CONFIG_HINT)
    missing = [s for s in SECTIONS if not isinstance(params.get(s), Mapping)]
    if missing:
        raise ConfigError(f"{origin}: model_params lacks {', '.join(missing)}.", CONFIG_HINT)
    params = copy.deepcopy(dict(params))
    _check_keys(origin, "kp_detector_params", params["kp_detector_params"], KPDetector)
    gen = dict(params["generator_params"])
    _check_keys(origin, "generator_params", gen, OcclusionAwareGenerator)
    if gen.get("dense_motion_params") is not None:
        _check_keys(origin, "dense_motion_params", gen["dense_motion_params"], DenseMotionNetwork)
    return params


def _read_yaml(path: Path) -> Any:
    import yaml

    if not path.is_file():
        raise ConfigError(f"Model config not found: {path}", CONFIG_HINT)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"Cannot read model config {path}: {err}", CONFIG_HINT) from err


def _check_keys(origin: str, section: str, values: Mapping[str, Any], cls: type) -> None:
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(values) - accepted)
    if unknown:
        raise ConfigError(f"{origin}: unknown keys in {section}: {', '.join(unknown)}",
                          f"Accepted keys: {', '.join(sorted(accepted))}.")


def build_models(model_params: Mapping[str, Any]) -> tuple[KPDetector, OcclusionAwareGenerator]:
    """Fresh (randomly initialised) kp_detector and generator for checked ``model_params``."""
    common = dict(model_params["common_params"])
    try:
        kp_detector = KPDetector(**model_params["kp_detector_params"], **common)
        generator = OcclusionAwareGenerator(**model_params["generator_params"], **common)
    except TypeError as err:
        raise ConfigError(f"model_params do not describe a FOMM model: {err}", CONFIG_HINT) from err
    return kp_detector, generator
