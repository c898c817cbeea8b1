"""The vox-256 model built from the shipped config has the checkpoint's exact keys and shapes."""

from __future__ import annotations

import json

import yaml

from avatarify_app.models import build_models, default_config_path, load_model_params


def _shapes(module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in module.state_dict().items()}


def test_vox256_matches_the_published_state_dict_layout(shared_fomm):
    ref = json.loads((shared_fomm / "vox-256.state_dict.json").read_text())
    params = load_model_params()
    assert params == ref["model_params"]
    kp_detector, generator = build_models(params)
    assert _shapes(kp_detector) == ref["kp_detector"]
    assert _shapes(generator) == ref["generator"]


def test_vox256_layout_self_contained():
    """Facts of the published vox-256 layout (counts and the shapes that pin each block down)."""
    kp_detector, generator = build_models(load_model_params())
    kp, gen = _shapes(kp_detector), _shapes(generator)
    assert len(kp) == 75 and len(gen) == 196
    assert kp["predictor.encoder.down_blocks.0.conv.weight"] == [64, 3, 3, 3]
    assert kp["predictor.encoder.down_blocks.4.conv.weight"] == [1024, 512, 3, 3]
    assert kp["predictor.decoder.up_blocks.0.conv.weight"] == [512, 1024, 3, 3]
    assert kp["predictor.decoder.up_blocks.4.conv.weight"] == [32, 128, 3, 3]
    assert kp["kp.weight"] == [10, 35, 7, 7] and kp["jacobian.weight"] == [40, 35, 7, 7]
    assert kp["down.weight"] == [3, 1, 13, 13]
    dm = "dense_motion_network."
    assert gen[dm + "hourglass.encoder.down_blocks.0.conv.weight"] == [128, 44, 3, 3]
    assert gen[dm + "hourglass.decoder.up_blocks.1.conv.weight"] == [512, 2048, 3, 3]
    assert gen[dm + "mask.weight"] == [11, 108, 7, 7] and gen[dm + "occlusion.weight"] == [1, 108, 7, 7]
    assert gen[dm + "down.weight"] == [3, 1, 13, 13]
    assert gen["first.conv.weight"] == [64, 3, 7, 7]
    assert gen["down_blocks.1.conv.weight"] == [256, 128, 3, 3]
    assert gen["up_blocks.0.conv.weight"] == [128, 256, 3, 3]
    assert gen["bottleneck.r5.norm2.running_var"] == [256]
    assert "bottleneck.r6.conv1.weight" not in gen
    assert gen["final.weight"] == [3, 64, 7, 7]
    # The 13x13 anti-aliasing kernel is a normalised Gaussian.
    assert abs(float(kp_detector.down.weight[0].sum()) - 1.0) < 1e-6


def test_shipped_config_is_in_the_authors_layout():
    data = yaml.safe_load(default_config_path().read_text())
    assert set(data) == {"model_params"}
    assert set(data["model_params"]) == {"common_params", "kp_detector_params", "generator_params"}
