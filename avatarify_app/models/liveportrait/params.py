"""``model_params`` in the LivePortrait authors' models.yaml layout: read, checked, built.

Five sections, one per network: ``appearance_feature_extractor_params``,
``motion_extractor_params``, ``warping_module_params`` (with ``dense_motion_params``),
``spade_generator_params`` and ``stitching_retargeting_module_params`` (``stitching``,
``lip``, ``eye``, each ``input_size`` / ``hidden_sizes`` / ``output_size``). A YAML file may
hold them under ``model_params`` (the authors' models.yaml as it is) or be the mapping itself.
``motion_extractor_params`` may also carry ``depths`` and ``dims`` for a reduced ConvNeXt-V2.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from torch import nn

from avatarify_app.errors import ConfigError
from avatarify_app.models.liveportrait.appearance_feature_extractor import AppearanceFeatureExtractor
from avatarify_app.models.liveportrait.dense_motion import DenseMotionNetwork
from avatarify_app.models.liveportrait.motion_extractor import MotionExtractor
from avatarify_app.models.liveportrait.spade_generator import SPADEDecoder
from avatarify_app.models.liveportrait.stitching_retargeting import StitchingRetargetingNetwork
from avatarify_app.models.liveportrait.warping_network import WarpingNetwork
from avatarify_app.models.model_params import check_keys, read_model_params

DEFAULT_CONFIG_NAME = "liveportrait.yaml"
NETWORKS = {
    "appearance_feature_extractor": AppearanceFeatureExtractor,
    "motion_extractor": MotionExtractor,
    "warping_module": WarpingNetwork,
    "spade_generator": SPADEDecoder,
}
RETARGETING_SECTION = "stitching_retargeting_module_params"
RETARGETING_PARTS = ("stitching", "lip", "eye")
SECTIONS = (*(f"{name}_params" for name in NETWORKS), RETARGETING_SECTION)
CONFIG_HINT = "Use the models.yaml the weights were released with (the authors' src/config/models.yaml works as it is)."


@dataclass(frozen=True)
class LivePortraitModels:
    """The five LivePortrait networks, each called as the authors' module is.

    ``stitching_retargeting_module`` is ``{'stitching', 'lip', 'eye'}`` -> MLP, or None when
    those weights were not supplied.
    """

    appearance_feature_extractor: AppearanceFeatureExtractor
    motion_extractor: MotionExtractor
    warping_module: WarpingNetwork
    spade_generator: SPADEDecoder
    stitching_retargeting_module: dict[str, StitchingRetargetingNetwork] | None

    def named_networks(self) -> Iterator[tuple[str, nn.Module]]:
        """("appearance_feature_extractor", module), ..., ("stitching_retargeting_module.eye", mlp)."""
        for name in NETWORKS:
            yield name, getattr(self, name)
        for part, mlp in (self.stitching_retargeting_module or {}).items():
            yield f"stitching_retargeting_module.{part}", mlp

    def eval(self) -> LivePortraitModels:
        for _, module in self.named_networks():
            module.eval()
        return self


def default_config_path() -> Path:
    """The shipped config with the released model's sizes (package data)."""
    return Path(str(resources.files("avatarify_app") / "configs" / DEFAULT_CONFIG_NAME))


def load_model_params(source: str | Path | Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A checked deep copy of ``model_params`` from a mapping, a YAML path or (None) the default."""
    params, origin = read_model_params(default_config_path() if source is None else source, SECTIONS, CONFIG_HINT)
    params = copy.deepcopy(dict(params))
    for name, cls in NETWORKS.items():
        check_keys(origin, f"{name}_params", params[f"{name}_params"], cls, CONFIG_HINT, required=True)
    dense = params["warping_module_params"].get("dense_motion_params")
    if not isinstance(dense, Mapping):
        raise ConfigError(f"{origin}: warping_module_params lacks dense_motion_params.", CONFIG_HINT)
    check_keys(origin, "dense_motion_params", dense, DenseMotionNetwork, CONFIG_HINT, required=True,
               supplied=frozenset({"num_kp", "feature_channel", "estimate_occlusion_map"}))
    for part in RETARGETING_PARTS:
        mlp = params[RETARGETING_SECTION].get(part)
        if not isinstance(mlp, Mapping):
            raise ConfigError(f"{origin}: {RETARGETING_SECTION} lacks {part}.", CONFIG_HINT)
        check_keys(origin, f"{RETARGETING_SECTION}.{part}", mlp, StitchingRetargetingNetwork, CONFIG_HINT,
                   required=True)
    _check_consistency(origin, params)
    return params


def _check_consistency(origin: str, p: Mapping[str, Any]) -> None:
    """The sizes that must agree for the networks to feed each other, each said as a fix."""
    afe, motion, warp = (p["appearance_feature_extractor_params"], p["motion_extractor_params"],
                         p["warping_module_params"])
    dense, spade = warp["dense_motion_params"], p["spade_generator_params"]
    problems = []
    if afe["max_features"] != afe["reshape_channel"] * afe["reshape_depth"]:
        problems.append("appearance_feature_extractor_params.max_features must equal "
                        "reshape_channel * reshape_depth")
    volume = (afe["reshape_channel"], afe["reshape_depth"])
    if (warp["reshape_channel"], dense["reshape_depth"]) != volume:
        problems.append(f"the warping module must read the appearance volume ({volume[0]} channels x "
                        f"{volume[1]} deep): set warping_module_params.reshape_channel and "
                        "dense_motion_params.reshape_depth to those")
    if warp["max_features"] != warp["reshape_channel"] * dense["reshape_depth"]:
        problems.append("warping_module_params.max_features must equal reshape_channel * "
                        "dense_motion_params.reshape_depth")
    num_kp = motion.get("num_kp", 24)
    if warp["num_kp"] != num_kp:
        problems.append(f"warping_module_params.num_kp ({warp['num_kp']}) must equal "
                        f"motion_extractor_params.num_kp ({num_kp})")
    warped = warp["block_expansion"] * 2 ** warp["num_down_blocks"]
    label = min(spade.get("max_features", 256), spade.get("block_expansion", 64) * 2 ** spade.get("num_down_blocks", 2))
    if warped != label:
        problems.append(f"the SPADE decoder reads {label} channels but the warping module gives {warped}")
    sizes = {"stitching": (6 * num_kp, 3 * num_kp + 2), "lip": (3 * num_kp + 2, 3 * num_kp),
             "eye": (3 * num_kp + 3, 3 * num_kp)}
    for part, (n_in, n_out) in sizes.items():
        mlp = p[RETARGETING_SECTION][part]
        if (mlp["input_size"], mlp["output_size"]) != (n_in, n_out):
            problems.append(f"{RETARGETING_SECTION}.{part} needs input_size {n_in} and output_size {n_out} "
                            f"for num_kp {num_kp}")
    if problems:
        raise ConfigError(f"{origin}: the sizes do not fit together: " + "; ".join(problems) + ".", CONFIG_HINT)


def build_liveportrait(model_params: Mapping[str, Any] | str | Path | None = None) -> LivePortraitModels:
    """Fresh (randomly initialised) networks in eval mode for ``model_params`` (None = default)."""
    params = load_model_params(model_params)
    try:
        nets = {name: cls(**params[f"{name}_params"]) for name, cls in NETWORKS.items()}
    except (TypeError, ValueError) as err:
        raise ConfigError(f"model_params do not describe a LivePortrait model: {err}", CONFIG_HINT) from err
    retargeting = {part: StitchingRetargetingNetwork(**params[RETARGETING_SECTION][part])
                   for part in RETARGETING_PARTS}
    return LivePortraitModels(**nets, stitching_retargeting_module=retargeting).eval()
