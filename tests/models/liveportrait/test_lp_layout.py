"""The networks built from the shipped config have the released files' exact keys and shapes
(no forward pass: full size only builds)."""

from __future__ import annotations

import json

import pytest
import yaml

from avatarify_app.models import build_liveportrait
from avatarify_app.models.liveportrait import default_config_path, load_model_params

BASE = ("appearance_feature_extractor", "motion_extractor", "warping_module", "spade_generator")
RETARGETING = {"stitching": "retarget_shoulder", "lip": "retarget_mouth", "eye": "retarget_eye"}


@pytest.fixture(scope="module")
def full():
    models = build_liveportrait()
    shapes = {name: {k: list(v.shape) for k, v in getattr(models, name).state_dict().items()} for name in BASE}
    for part, mlp in models.stitching_retargeting_module.items():
        shapes[part] = {k: list(v.shape) for k, v in mlp.state_dict().items()}
    return models, shapes


def test_released_layout_key_for_key(shared_liveportrait, full):
    ref = json.loads((shared_liveportrait / "keys.json").read_text())
    _, shapes = full
    for name in BASE:
        assert shapes[name] == ref[f"base_models/{name}.pth"], name
        assert list(shapes[name]) == list(ref[f"base_models/{name}.pth"]), f"{name}: key order"
    retargeting = ref["retargeting_models/stitching_retargeting_module.pth"]
    assert set(retargeting) == set(RETARGETING.values())
    for part, file_key in RETARGETING.items():
        assert shapes[part] == retargeting[file_key], part


def test_released_layout_self_contained(full):
    """Facts of the released layout: key counts per file and the shapes that pin each block."""
    models, s = full
    afe, me, wm, sg = (s[n] for n in BASE)
    assert [len(afe), len(me), len(wm), len(sg)] == [107, 212, 97, 182]
    assert [len(s[p]) for p in RETARGETING] == [8, 8, 12]
    # F: 64 -> 128 -> 256 wide, 512 = 32 channels x 16 deep, six 3D residual blocks
    assert afe["first.conv.weight"] == [64, 3, 3, 3]
    assert afe["down_blocks.1.conv.weight"] == [256, 128, 3, 3]
    assert afe["second.weight"] == [512, 256, 1, 1]
    assert afe["resblocks_3d.3dr5.conv2.weight"] == [32, 32, 3, 3, 3] and "resblocks_3d.3dr6.conv1.weight" not in afe
    # M: ConvNeXt-V2 tiny (3, 3, 9, 3 blocks; 96..768 wide), 21 keypoints, 66 pose bins
    assert me["detector.downsample_layers.0.0.weight"] == [96, 3, 4, 4]
    assert me["detector.downsample_layers.3.1.weight"] == [768, 384, 2, 2]
    assert "detector.stages.2.8.grn.gamma" in me and "detector.stages.2.9.grn.gamma" not in me
    assert me["detector.stages.3.2.grn.gamma"] == [1, 1, 1, 3072]
    assert me["detector.fc_kp.weight"] == [63, 768] and me["detector.fc_pitch.weight"] == [66, 768]
    # W: hourglass on 22 * 5 = 110 channels, 5 levels up to 1024; mask over 22; occlusion on 142 * 16
    dm = "dense_motion_network."
    assert wm[dm + "hourglass.encoder.down_blocks.0.conv.weight"] == [64, 110, 3, 3, 3]
    assert wm[dm + "hourglass.encoder.down_blocks.4.conv.weight"] == [1024, 512, 3, 3, 3]
    assert wm[dm + "hourglass.decoder.conv.weight"] == [142, 142, 3, 3, 3]
    assert wm[dm + "mask.weight"] == [22, 142, 7, 7, 7] and wm[dm + "occlusion.weight"] == [1, 2272, 7, 7]
    assert wm[dm + "compress.weight"] == [4, 32, 1, 1, 1]
    assert wm["third.conv.weight"] == [256, 512, 3, 3] and wm["fourth.weight"] == [256, 256, 1, 1]
    # G: spectral-norm convs (weight_orig, u, v), 512 wide middle, pixel shuffle to 512 px
    assert sg["fc.weight"] == [512, 256, 3, 3]
    assert sg["G_middle_5.conv_1.weight_orig"] == [512, 512, 3, 3] and sg["G_middle_5.conv_1.weight_v"] == [4608]
    assert "G_middle_0.conv_s.weight_orig" not in sg and "G_middle_6.conv_0.bias" not in sg
    assert sg["up_0.conv_s.weight_orig"] == [256, 512, 1, 1] and "up_0.conv_s.bias" not in sg
    assert sg["up_1.conv_1.weight_u"] == [64] and sg["up_1.norm_0.mlp_shared.0.weight"] == [128, 256, 3, 3]
    assert sg["conv_img.0.weight"] == [12, 64, 3, 3]
    # S, R: MLPs on 126 -> 65, 65 -> 63, 66 -> 63
    assert s["stitching"]["mlp.0.weight"] == [128, 126] and s["stitching"]["mlp.6.weight"] == [65, 64]
    assert s["lip"]["mlp.0.weight"] == [128, 65] and s["eye"]["mlp.10.weight"] == [63, 64]
    # every network is built in eval mode
    assert not any(m.training for _, net in models.named_networks() for m in net.modules())


def test_shipped_config_is_the_authors_models_yaml():
    data = yaml.safe_load(default_config_path().read_text())
    assert set(data) == {"model_params"}
    p = data["model_params"]
    assert set(p) == {"appearance_feature_extractor_params", "motion_extractor_params", "warping_module_params",
                      "spade_generator_params", "stitching_retargeting_module_params"}
    assert p["motion_extractor_params"] == {"num_kp": 21, "backbone": "convnextv2_tiny"}
    assert p["spade_generator_params"] == {"upscale": 2, "block_expansion": 64, "max_features": 512,
                                           "num_down_blocks": 2}
    assert p["warping_module_params"]["dense_motion_params"] == {"block_expansion": 32, "max_features": 1024,
                                                                 "num_blocks": 5, "reshape_depth": 16, "compress": 4}
    assert load_model_params() == p
