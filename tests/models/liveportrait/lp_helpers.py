"""Tiny LivePortrait configurations and seeded random weights for the model tests.

Imported by name (``from lp_helpers import tiny_params``): pytest puts this folder on
``sys.path`` for the test files in it. ``fill_weights`` is also what made the weights of the
oracle cases in tests/data/liveportrait (see its README): each tensor's values depend only on
the seed and the tensor's key, so the authors' modules and ours, which share every key, get
the same weights.
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

_TINY: dict[str, Any] = {
    "appearance_feature_extractor_params": {"image_channel": 3, "block_expansion": 8, "num_down_blocks": 2,
                                            "max_features": 16, "reshape_channel": 4, "reshape_depth": 4,
                                            "num_resblocks": 1},
    "motion_extractor_params": {"num_kp": 21, "backbone": "convnextv2", "depths": [1, 1, 1, 1],
                                "dims": [8, 16, 16, 32]},
    "warping_module_params": {"num_kp": 21, "block_expansion": 2, "max_features": 16, "num_down_blocks": 2,
                              "reshape_channel": 4, "estimate_occlusion_map": True,
                              "dense_motion_params": {"block_expansion": 4, "max_features": 16, "num_blocks": 2,
                                                      "reshape_depth": 4, "compress": 2}},
    "spade_generator_params": {"upscale": 1, "block_expansion": 2, "max_features": 8, "num_down_blocks": 2,
                               "out_channels": 16},
    "stitching_retargeting_module_params": {
        "stitching": {"input_size": 126, "hidden_sizes": [16, 16], "output_size": 65},
        "lip": {"input_size": 65, "hidden_sizes": [16, 8], "output_size": 63},
        "eye": {"input_size": 66, "hidden_sizes": [16, 16, 8], "output_size": 63},
    },
}


def tiny_params(num_kp: int = 21, depth: int = 4, upscale: int = 1, occlusion: bool = True,
                **overrides: Any) -> dict[str, Any]:
    """model_params for 64x64 crops (feature volume 4 x ``depth`` x 16 x 16), a fresh copy.

    ``overrides`` are dotted paths: ``tiny_params(**{"motion_extractor_params.depths": [1, 2, 1, 1]})``.
    """
    p = copy.deepcopy(_TINY)
    p["motion_extractor_params"]["num_kp"] = p["warping_module_params"]["num_kp"] = num_kp
    p["appearance_feature_extractor_params"]["reshape_depth"] = depth
    p["appearance_feature_extractor_params"]["max_features"] = 4 * depth
    p["warping_module_params"]["max_features"] = 4 * depth
    p["warping_module_params"]["dense_motion_params"]["reshape_depth"] = depth
    p["warping_module_params"]["estimate_occlusion_map"] = occlusion
    p["spade_generator_params"]["upscale"] = upscale
    mlps = p["stitching_retargeting_module_params"]
    mlps["stitching"].update(input_size=6 * num_kp, output_size=3 * num_kp + 2)
    mlps["lip"].update(input_size=3 * num_kp + 2, output_size=3 * num_kp)
    mlps["eye"].update(input_size=3 * num_kp + 3, output_size=3 * num_kp)
    for dotted, value in overrides.items():
        *path, key = dotted.split(".")
        node = p
        for part in path:
            node = node[part]
        node[key] = value
    return p


def _generator(seed: int, network: str, key: str) -> torch.Generator:
    return torch.Generator().manual_seed(zlib.crc32(f"{seed}:{network}:{key}".encode()))


def _values(g: torch.Generator, key: str, t: torch.Tensor) -> torch.Tensor:
    name = key.rsplit(".", 1)[-1]
    if name == "running_var":
        return torch.rand(t.shape, generator=g) + 0.5
    if name in ("running_mean", "bias") and t.ndim == 1:
        return torch.randn(t.shape, generator=g) * 0.1
    if name == "weight" and t.ndim == 1:  # BatchNorm / LayerNorm affine
        return torch.rand(t.shape, generator=g) + 0.5
    if name in ("gamma", "beta"):  # GRN
        return torch.randn(t.shape, generator=g) * 0.3
    fan_in = max(1, t[0].numel())
    w = torch.randn(t.shape, generator=g) / fan_in**0.5
    if any(head in key for head in ("fc_kp.", "fc_exp.", "fc_t.", "fc_scale.")):
        w = w * 0.3  # keypoints mostly inside the volume
    return w


def fill_weights(state: Mapping[str, torch.Tensor], seed: int, network: str) -> None:
    """Overwrite a module's state dict tensors in place with values from (seed, network, key).

    Spectral-norm vectors: v is a random unit vector and u the unit W v turned by a random
    perturbation, so the stored u, v are not the power iteration's fixed point (eval mode must
    use them as stored) while sigma = u . W v stays positive.
    """
    with torch.no_grad():
        for key, t in state.items():
            if t.is_floating_point() and not key.endswith(("weight_u", "weight_v")):
                t.copy_(_values(_generator(seed, network, key), key, t))
            if key.endswith("fc_scale.bias"):
                t.add_(1.0)
        for key, u in state.items():
            if not key.endswith("weight_u"):
                continue
            stem = key[: -len("weight_u")]
            w = state[stem + "weight_orig"].reshape(u.shape[0], -1)
            g = _generator(seed, network, key)
            v = F.normalize(torch.randn(w.shape[1], generator=g), dim=0)
            u_new = F.normalize(w @ v, dim=0) + 0.3 * F.normalize(torch.randn(u.shape[0], generator=g), dim=0)
            u.copy_(F.normalize(u_new, dim=0))
            state[stem + "weight_v"].copy_(v)


def fill_models(models: Any, seed: int = 0) -> Any:
    """``fill_weights`` on every network of a LivePortraitModels (named as ``named_networks`` does)."""
    for name, module in models.named_networks():
        fill_weights(module.state_dict(), seed, name)
    return models


def images(batch: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    """Bx3xSxS smooth random images in [0, 1] (bilinear upsampling of 8x8 noise)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(batch, 3, 8, 8, generator=g)
    return F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)


def reference_outputs(models: Any, source: torch.Tensor, drivings: Mapping[str, torch.Tensor],
                      eye_ratio: torch.Tensor, lip_ratio: torch.Tensor, warp_with: str) -> dict[str, torch.Tensor]:
    """Every array of a reference case, computed by our modules and motion functions.

    ``drivings``: name ("driving", "driving0", ...) -> image batch; ``warp_with`` names the
    driving frame whose stitched keypoints drive the warping module.
    """
    from avatarify_app.motion import (
        apply_stitching,
        headpose_to_degrees,
        retarget_eye,
        retarget_lip,
        stitching_delta,
        transform_keypoint,
    )

    out: dict[str, torch.Tensor] = {}
    mlps = models.stitching_retargeting_module
    with torch.inference_mode():
        feature = out["feature_3d"] = models.appearance_feature_extractor(source)
        x = {}
        for name, image in {"source": source, **drivings}.items():
            info = models.motion_extractor(image)
            out.update({f"{name}_{k}": v for k, v in info.items()})
            for angle in ("pitch", "yaw", "roll"):
                out[f"{name}_{angle}_deg"] = headpose_to_degrees(info[angle])[:, None]
            x[name] = out[f"{name}_x"] = transform_keypoint(info)
        for name in drivings:
            suffix = name[len("driving"):]
            out[f"stitching_delta{suffix}"] = stitching_delta(mlps["stitching"], x["source"], x[name])
            out[f"{name}_x_stitched"] = apply_stitching(mlps["stitching"], x["source"], x[name])
        out["eye_delta"] = retarget_eye(mlps["eye"], x["source"], eye_ratio)
        out["lip_delta"] = retarget_lip(mlps["lip"], x["source"], lip_ratio)
        warped = models.warping_module(feature, kp_driving=out[f"{warp_with}_x_stitched"], kp_source=x["source"])
        if warped["occlusion_map"] is not None:
            out["warp_occlusion_map"] = warped["occlusion_map"]
        out["warp_deformation"] = warped["deformation"]
        out["warp_out"] = warped["out"]
        out["spade_out"] = models.spade_generator(feature=warped["out"])
    return out


def save_folder(models: Any, root: Any, suffix: str = ".pth", module_prefix: bool = False) -> None:
    """Write ``models`` in the authors' folder layout (base_models/, retargeting_models/)."""
    from pathlib import Path

    root = Path(root)
    (root / "base_models").mkdir(parents=True, exist_ok=True)
    (root / "retargeting_models").mkdir(parents=True, exist_ok=True)
    file_keys = {"stitching": "retarget_shoulder", "lip": "retarget_mouth", "eye": "retarget_eye"}
    retargeting = {file_keys[part]: {("module." if module_prefix else "") + k: v.clone()
                                     for k, v in mlp.state_dict().items()}
                   for part, mlp in models.stitching_retargeting_module.items()}
    bases = {name: {k: v.clone() for k, v in getattr(models, name).state_dict().items()}
             for name in ("appearance_feature_extractor", "motion_extractor", "warping_module", "spade_generator")}
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        for name, sd in bases.items():
            save_file(sd, str(root / "base_models" / f"{name}.safetensors"))
        flat = {f"{part}.{k}": v for part, sd in retargeting.items() for k, v in sd.items()}
        save_file(flat, str(root / "retargeting_models" / "stitching_retargeting_module.safetensors"))
    else:
        for name, sd in bases.items():
            torch.save(sd, root / "base_models" / f"{name}.pth")
        torch.save(retargeting, root / "retargeting_models" / "stitching_retargeting_module.pth")
