"""Every array of ../shared/fomm/small_vox.npz, reproduced from small_vox.pth.tar (CPU float32)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from avatarify_app.models import load_fomm
from avatarify_app.motion import relative_keypoints

pytestmark = pytest.mark.needs_checkpoint
TOL = 1e-4


@pytest.fixture
def reference(shared_fomm):
    shared = shared_fomm
    meta = json.loads((shared / "small_vox.json").read_text())
    arrays = dict(np.load(shared / "small_vox.npz"))
    kp_detector, generator = load_fomm(shared / "small_vox.pth.tar", meta["model_params"])
    t = {k: torch.from_numpy(v) for k, v in arrays.items()}
    norm = meta["normalization"]
    with torch.inference_mode():
        kp = {name: kp_detector(t[name]) for name in ("source", "driving_initial", "driving")}
        kp_norm = relative_keypoints(kp["source"], kp["driving"], kp["driving_initial"],
                                     adapt_movement_scale=norm["adapt_movement_scale"],
                                     use_relative_movement=norm["use_relative_movement"],
                                     use_relative_jacobian=norm["use_relative_jacobian"])
        relative = generator(t["source"], kp_source=kp["source"], kp_driving=kp_norm)
        absolute = generator(t["source"], kp_source=kp["source"], kp_driving=kp["driving"])
    ours = {
        "kp_source_value": kp["source"]["value"], "kp_source_jacobian": kp["source"]["jacobian"],
        "kp_initial_value": kp["driving_initial"]["value"],
        "kp_initial_jacobian": kp["driving_initial"]["jacobian"],
        "kp_driving_value": kp["driving"]["value"], "kp_driving_jacobian": kp["driving"]["jacobian"],
        "kp_norm_value": kp_norm["value"], "kp_norm_jacobian": kp_norm["jacobian"],
        "absolute_prediction": absolute["prediction"],
    }
    for key in ("prediction", "deformed", "mask", "sparse_deformed", "occlusion_map"):
        ours[f"relative_{key}"] = relative[key]
    return arrays, {k: v.numpy() for k, v in ours.items()}


def test_every_output_array_is_reproduced(reference):
    arrays, ours = reference
    outputs = [k for k in arrays if k not in ("source", "driving_initial", "driving")]
    assert sorted(outputs) == sorted(ours), "the reference has arrays this test does not check"
    for key in outputs:
        assert ours[key].shape == arrays[key].shape, key
        err = float(np.abs(ours[key] - arrays[key]).max())
        assert err <= TOL, f"{key}: max abs error {err:.2e} > {TOL}"


def test_models_are_in_eval_mode_and_load_strictly(shared_fomm):
    meta = json.loads((shared_fomm / "small_vox.json").read_text())
    kp_detector, generator = load_fomm(shared_fomm / "small_vox.pth.tar", meta["model_params"])
    assert not kp_detector.training and not generator.training
    ckpt = torch.load(shared_fomm / "small_vox.pth.tar", map_location="cpu", weights_only=True)
    assert set(generator.state_dict()) == set(ckpt["generator"])
    assert set(kp_detector.state_dict()) == set(ckpt["kp_detector"])
