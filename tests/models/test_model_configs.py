"""Other configurations build from model_params alone, run, and round-trip their state dicts."""

from __future__ import annotations

import pytest
import torch

from avatarify_app.errors import ConfigError
from avatarify_app.models import build_models, load_model_params
from avatarify_app.motion import relative_keypoints

VARIANTS = {
    "tiny": {},
    "num_kp_7": {"common_params.num_kp": 7},
    "single_jacobian_map": {"kp_detector_params.single_jacobian_map": True},
    "no_jacobian": {"common_params.estimate_jacobian": False},
    "no_occlusion": {"generator_params.estimate_occlusion_map": False},
    "more_blocks": {"kp_detector_params.num_blocks": 4, "generator_params.num_down_blocks": 3,
                    "generator_params.num_bottleneck_blocks": 1,
                    "generator_params.dense_motion_params.num_blocks": 4},
    "no_downscale": {"generator_params.dense_motion_params.scale_factor": 1},
}


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_runs_and_round_trips(variant, batch, tiny, randomized):
    params = load_model_params(tiny(**VARIANTS[variant]))
    num_kp = params["common_params"]["num_kp"]
    kp_detector, generator = (randomized(m, seed) for seed, m in enumerate(build_models(params)))
    torch.manual_seed(1)
    source, driving = torch.rand(batch, 3, 64, 64), torch.rand(batch, 3, 64, 64)
    with torch.inference_mode():
        kp_s, kp_d = kp_detector(source), kp_detector(driving)
        assert kp_s["value"].shape == (batch, num_kp, 2)
        assert kp_s["value"].abs().max() <= 1.0
        if params["common_params"]["estimate_jacobian"]:
            assert kp_s["jacobian"].shape == (batch, num_kp, 2, 2)
        else:
            assert "jacobian" not in kp_s
        kp_n = relative_keypoints(kp_s, kp_d, kp_s, adapt_movement_scale=True)
        out = generator(source, kp_source=kp_s, kp_driving=kp_n)
    small = 16 if params["generator_params"]["dense_motion_params"]["scale_factor"] == 0.25 else 64
    assert out["prediction"].shape == (batch, 3, 64, 64)
    assert out["deformed"].shape == (batch, 3, 64, 64)
    assert out["mask"].shape == (batch, num_kp + 1, small, small)
    assert out["sparse_deformed"].shape == (batch, num_kp + 1, 3, small, small)
    if params["generator_params"]["estimate_occlusion_map"]:
        assert out["occlusion_map"].shape == (batch, 1, small, small)
    else:
        assert "occlusion_map" not in out
    for key, value in out.items():
        assert torch.isfinite(value).all(), key
    assert 0.0 <= float(out["prediction"].min()) and float(out["prediction"].max()) <= 1.0

    kp2, gen2 = build_models(params)
    kp2.load_state_dict(kp_detector.state_dict(), strict=True)
    gen2.load_state_dict(generator.state_dict(), strict=True)
    with torch.inference_mode():
        again = gen2.eval()(source, kp_source=kp2.eval()(source), kp_driving=kp_n)
    assert torch.equal(again["prediction"], out["prediction"])


def test_mask_is_a_distribution_and_source_driving_identity(tiny, randomized):
    """Driving with the source's own keypoints: the masks sum to 1 and H_k vanishes."""
    kp_detector, generator = (randomized(m, s) for s, m in enumerate(build_models(load_model_params(tiny()))))
    source = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        kp = kp_detector(source)
        out = generator(source, kp_source=kp, kp_driving=kp)
        heat = generator.dense_motion_network.heatmap_representation(kp, kp, 16, 16)
    assert torch.allclose(out["mask"].sum(1), torch.ones(2, 16, 16), atol=1e-5)
    assert heat.abs().max() == 0
    # With identical keypoints every sparse motion is the identity, so is the deformation.
    grid = out["sparse_deformed"][:, 0]
    assert torch.allclose(out["sparse_deformed"], grid.unsqueeze(1).expand_as(out["sparse_deformed"]), atol=1e-5)


def test_authors_yaml_with_extra_sections_loads(tmp_path, tiny):
    import yaml

    cfg = {"dataset_params": {"root_dir": "data/vox"}, "model_params": {**tiny(), "discriminator_params": {"sn": True}},
           "train_params": {"num_epochs": 100}, "reconstruction_params": {}, "visualizer_params": {}}
    path = tmp_path / "vox-tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    params = load_model_params(path)
    kp_detector, _ = build_models(params)
    assert kp_detector.num_kp == 4
    assert load_model_params(str(path)) == params


def test_default_is_vox256():
    params = load_model_params()
    assert params["generator_params"]["block_expansion"] == 64
    assert params["kp_detector_params"]["max_features"] == 1024


@pytest.mark.parametrize(("change", "needle"), [
    ({"kp_detector_params.typo_key": 1}, "typo_key"),
    ({"generator_params.dense_motion_params.num_kp": 3}, "num_kp"),
])
def test_bad_params_raise_config_error(tiny, change, needle):
    with pytest.raises(ConfigError, match=needle):
        build_models(load_model_params(tiny(**change)))


def test_missing_section_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="generator_params"):
        load_model_params({"common_params": {}, "kp_detector_params": {}})
    with pytest.raises(ConfigError, match="not found"):
        load_model_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_params: [1, 2")
    with pytest.raises(ConfigError, match=r"bad\.yaml"):
        load_model_params(bad)
