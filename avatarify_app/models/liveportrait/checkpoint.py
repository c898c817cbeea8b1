"""Loading the LivePortrait authors' released weights safely and strictly.

The folder is laid out as the authors ship it (``pretrained_weights/liveportrait/``)::

    base_models/appearance_feature_extractor.pth
    base_models/motion_extractor.pth
    base_models/warping_module.pth
    base_models/spade_generator.pth
    retargeting_models/stitching_retargeting_module.pth   (optional)

The retargeting file is a dict of three state dicts, ``retarget_shoulder`` (the stitching
MLP), ``retarget_mouth`` (lip) and ``retarget_eye``; their keys may carry DataParallel's
``module.`` prefix, which is removed as the authors' loader does. Every file may instead be a
``.safetensors`` file of the same tensors (the retargeting one with flat keys
``retarget_eye.mlp.0.weight``, ...); where both exist the ``.safetensors`` file is used, as it
holds no pickle at all. ``.pth`` files are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from avatarify_app.errors import CheckpointError
from avatarify_app.models.liveportrait.params import (
    CONFIG_HINT,
    NETWORKS,
    RETARGETING_PARTS,
    LivePortraitModels,
    build_liveportrait,
)
from avatarify_app.models.safe_load import (
    SAFETENSORS_SUFFIX,
    as_state_dict,
    check_state_dict,
    load_weights,
    strip_prefix,
)

log = logging.getLogger(__name__)

BASE_DIR = "base_models"
RETARGETING_FILE = "retargeting_models/stitching_retargeting_module"
RETARGETING_KEYS = {"stitching": "retarget_shoulder", "lip": "retarget_mouth", "eye": "retarget_eye"}
LAYOUT = (f"{BASE_DIR}/{{{','.join(NETWORKS)}}}.pth and, for stitching and eye/lip retargeting, "
          f"{RETARGETING_FILE}.pth (each may be .safetensors instead)")
WEIGHTS_HINT = ("Use the authors' released LivePortrait weights (KwaiVGI/LivePortrait, the folder "
            "pretrained_weights/liveportrait/); see checkpoints/README.md.")


def weights_path(folder: Path, stem: str) -> Path | None:
    """``folder/stem.safetensors`` or ``folder/stem.pth``, whichever exists (safetensors first)."""
    for suffix in (SAFETENSORS_SUFFIX, ".pth"):
        path = folder / f"{stem}{suffix}"
        if path.exists():
            return path
    return None


def _layout_hint(folder: Path) -> str:
    hint = f"Expected inside {folder}: {LAYOUT}."
    if (folder / "liveportrait" / BASE_DIR).is_dir():
        hint += f" {folder / 'liveportrait'} has that layout: point at it."
    elif folder.name in (BASE_DIR, "retargeting_models"):
        hint += f" Point at the folder above it, {folder.parent}."
    return f"{hint} {WEIGHTS_HINT}"


def _hint(part: str, key: str, expected: tuple[int, ...] | None, found: tuple[int, ...] | None) -> str | None:
    """The config change that makes ``part.key`` fit, where the shapes tell."""
    differ = expected is not None and found is not None and expected != found
    if part == "motion_extractor":
        if key == "detector.fc_kp.weight" and differ:
            return (f"The file has num_kp = {found[0] // 3}; set num_kp: {found[0] // 3} in motion_extractor_params "
                    "and warping_module_params (and the stitching/retargeting sizes).")
        if key.startswith(("detector.stages.", "detector.downsample_layers.")):
            return ("The file's ConvNeXt-V2 has other stage depths or widths; set motion_extractor_params.depths "
                    "and dims to the file's (the released backbone is convnextv2_tiny: 3, 3, 9, 3 and 96, 192, "
                    "384, 768).")
    if part == "warping_module":
        if key == "dense_motion_network.mask.weight" and differ:
            return f"The file has num_kp = {found[0] - 1}; set warping_module_params.num_kp: {found[0] - 1}."
        if key.startswith("dense_motion_network.occlusion.") and (expected is None) != (found is None):
            flag = "true" if expected is None else "false"
            return f"Set warping_module_params.estimate_occlusion_map: {flag} (as the file was trained)."
    if part == "spade_generator":
        if key.startswith("conv_img.0.") and (expected is None) != (found is None):
            return f"Set spade_generator_params.upscale: {2 if expected is None else 1} (as the file was trained)."
    if part.startswith("stitching_retargeting_module.") and key.startswith("mlp.") and (expected is None) != (found is None):
        section = part.split(".", 1)[1].split(" ", 1)[0]
        return f"The file's {section} MLP has another number of layers; set its hidden_sizes to the file's."
    if part.startswith("stitching_retargeting_module.") and key == "mlp.0.weight" and differ:
        section = part.split(".", 1)[1].split(" ", 1)[0]
        return f"The file's {section} MLP reads {found[1]} inputs; set its input_size: {found[1]}."
    return None


def _fit(path: Path, part: str, module: nn.Module, sd: dict[str, torch.Tensor]) -> None:
    check_state_dict(path, part, module, sd, _hint, CONFIG_HINT)
    module.load_state_dict(sd, strict=True)


def read_retargeting(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    """{'stitching', 'lip', 'eye'} -> state dict from the retargeting file, ``module.`` removed."""
    data = load_weights(path, WEIGHTS_HINT)
    if not isinstance(data, Mapping):
        raise CheckpointError(f"{path} holds a {type(data).__name__}, not the retargeting dict.", WEIGHTS_HINT)
    parts: dict[str, Any] = {}
    for part, file_key in RETARGETING_KEYS.items():
        if file_key in data:  # nested, as the authors save it
            parts[part] = data[file_key]
        else:  # flat keys "retarget_eye.mlp.0.weight", as a .safetensors file holds them
            prefix = f"{file_key}."
            flat = {k[len(prefix):]: v for k, v in data.items() if isinstance(k, str) and k.startswith(prefix)}
            if flat:
                parts[part] = flat
    missing = [RETARGETING_KEYS[p] for p in RETARGETING_PARTS if p not in parts]
    if missing:
        found = ", ".join(sorted(map(str, data))[:6]) or "nothing"
        raise CheckpointError(f"{path} has no {', '.join(missing)} weights (it holds: {found}).", WEIGHTS_HINT)
    return {part: strip_prefix(as_state_dict(path, RETARGETING_KEYS[part], value, WEIGHTS_HINT), "module.")
            for part, value in parts.items()}


def load_liveportrait(folder: str | Path, model_params: Mapping[str, Any] | str | Path | None = None,
                      ) -> LivePortraitModels:
    """The five networks in eval mode on the CPU, loaded strictly from the authors' folder layout.

    ``model_params``: None = the shipped config (the released sizes), a mapping in the authors'
    layout or a YAML path (their models.yaml as it is). ``stitching_retargeting_module`` is None
    when ``retargeting_models/stitching_retargeting_module.pth`` is absent.
    """
    root = Path(folder)
    if not root.is_dir():
        raise CheckpointError(f"LivePortrait weights folder not found: {root}", _layout_hint(root))
    paths = {name: weights_path(root / BASE_DIR, name) for name in NETWORKS}
    absent = [f"{BASE_DIR}/{name}.pth" for name, path in paths.items() if path is None]
    if absent:
        raise CheckpointError(f"LivePortrait weights not found in {root}: {', '.join(absent)}.", _layout_hint(root))
    models = build_liveportrait(model_params)
    for name, path in paths.items():
        sd = strip_prefix(as_state_dict(path, name, load_weights(path, WEIGHTS_HINT), WEIGHTS_HINT), "module.")
        _fit(path, name, getattr(models, name), sd)
    retargeting_path = weights_path(root, RETARGETING_FILE)
    retargeting = models.stitching_retargeting_module
    if retargeting_path is None:
        log.info("no %s.pth in %s: stitching and eye/lip retargeting are off", RETARGETING_FILE, root)
        retargeting = None
    else:
        for part, sd in read_retargeting(retargeting_path).items():
            _fit(retargeting_path, f"stitching_retargeting_module.{part} ({RETARGETING_KEYS[part]})",
                 retargeting[part], sd)
    log.info("loaded LivePortrait weights from %s", root)
    return LivePortraitModels(
        appearance_feature_extractor=models.appearance_feature_extractor,
        motion_extractor=models.motion_extractor,
        warping_module=models.warping_module,
        spade_generator=models.spade_generator,
        stitching_retargeting_module=retargeting,
    ).eval()
