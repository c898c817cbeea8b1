"""Loading FOMM checkpoints safely and strictly.

Files are read with ``torch.load(weights_only=True)``: tensors and plain containers only, so
a pickle that would run code is refused before anything runs. Accepted layouts: the authors'
training files ({'generator', 'kp_detector', 'discriminator', 'optimizer_*', 'epoch'}) and
plain {'generator', 'kp_detector'} dicts of state dicts. Keys and shapes must match the model
built from ``model_params`` exactly; every mismatch is a ``CheckpointError`` naming the file,
the problem and, where the shapes tell, the config change that fixes it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from avatarify_app.errors import CheckpointError
from avatarify_app.models.fomm.generator import OcclusionAwareGenerator
from avatarify_app.models.fomm.keypoint_detector import KPDetector
from avatarify_app.models.fomm.params import CONFIG_HINT, build_models, load_model_params
from avatarify_app.models.safe_load import as_state_dict, load_weights, strip_prefix
from avatarify_app.models.safe_load import check_state_dict as check_fit

log = logging.getLogger(__name__)

PARTS = ("kp_detector", "generator")
WEIGHTS_HINT = "Use the authors' vox-cpk.pth.tar or vox-adv-cpk.pth.tar (see checkpoints/README.md)."


def read_checkpoint(path: str | Path) -> dict[str, dict[str, torch.Tensor]]:
    """{'kp_detector': state_dict, 'generator': state_dict} from a checkpoint file, safely."""
    p = Path(path)
    data = load_weights(p, WEIGHTS_HINT)
    if not isinstance(data, Mapping):
        raise CheckpointError(f"{p} holds a {type(data).__name__}, not a FOMM checkpoint dict.", WEIGHTS_HINT)
    missing = [k for k in PARTS if k not in data]
    if missing:
        found = ", ".join(sorted(map(str, data))[:8]) or "nothing"
        raise CheckpointError(f"{p} has no {' or '.join(missing)} weights (it holds: {found}).", WEIGHTS_HINT)
    return {part: strip_prefix(as_state_dict(p, part, data[part], WEIGHTS_HINT), "module.") for part in PARTS}


def _hint(part: str, key: str, expected: tuple[int, ...] | None, found: tuple[int, ...] | None) -> str | None:
    """What config change makes ``part.key`` fit, when the shapes say so."""
    if part == "kp_detector" and key == "kp.weight" and expected and found and found[0] != expected[0]:
        return f"The file has num_kp = {found[0]}; set common_params.num_kp: {found[0]}."
    if part == "kp_detector" and key == "jacobian.weight":
        if found is None:
            return "The file has no Jacobian head; set common_params.estimate_jacobian: false."
        if expected is None:
            return "The file has a Jacobian head; set common_params.estimate_jacobian: true."
        if found[0] == 4 and expected[0] != 4:
            return "The file has a single Jacobian map; set kp_detector_params.single_jacobian_map: true."
        if expected[0] == 4 and found[0] != 4:
            return "The file has one Jacobian map per keypoint; set single_jacobian_map: false."
    if part == "generator" and key == "dense_motion_network.occlusion.weight":
        flag = "false" if found is None else "true"
        return f"Set generator_params.estimate_occlusion_map: {flag} (as the file was trained)."
    if part == "generator" and key == "dense_motion_network.mask.weight" and expected and found:
        return f"The file has num_kp = {found[0] - 1}; set common_params.num_kp: {found[0] - 1}."
    return None


def check_state_dict(path: Path | str, part: str, model: nn.Module, sd: Mapping[str, torch.Tensor]) -> None:
    """Raise ``CheckpointError`` unless ``sd`` has exactly the model's keys and shapes."""
    check_fit(path, part, model, sd, _hint, CONFIG_HINT)


def load_fomm(checkpoint_path: str | Path, model_params: Mapping[str, Any] | str | Path | None = None,
              ) -> tuple[KPDetector, OcclusionAwareGenerator]:
    """(kp_detector, generator) in eval mode on the CPU, loaded strictly from ``checkpoint_path``.

    ``model_params``: None = the shipped vox-256 config, a mapping in the authors' layout or a
    YAML path (an authors' config file as it is).
    """
    params = load_model_params(model_params)
    kp_detector, generator = build_models(params)
    parts = read_checkpoint(checkpoint_path)
    for name, module in (("kp_detector", kp_detector), ("generator", generator)):
        check_state_dict(checkpoint_path, name, module, parts[name])
        module.load_state_dict(parts[name], strict=True)
        module.eval()
    log.info("loaded FOMM checkpoint %s", checkpoint_path)
    return kp_detector, generator
