"""``load_liveportrait`` reads the authors' folder layout safely and strictly; every failure is
a CheckpointError or ConfigError that says what to do."""

from __future__ import annotations

import pickle
import shutil

import pytest
import torch
import yaml
from lp_helpers import fill_models, images, save_folder, tiny_params

from avatarify_app.errors import CheckpointError, ConfigError
from avatarify_app.models import build_liveportrait, load_liveportrait
from avatarify_app.models.liveportrait import load_model_params

NAMES = ("appearance_feature_extractor", "motion_extractor", "warping_module", "spade_generator")


def _saved(tmp_path, name="lp", params=None, seed=3, **kw):
    params = params or tiny_params(num_kp=5)
    models = fill_models(build_liveportrait(params), seed)
    save_folder(models, tmp_path / name, **kw)
    return models, tmp_path / name


def _same_weights(a, b):
    for (name, x), (_, y) in zip(a.named_networks(), b.named_networks(), strict=True):
        for key, value in x.state_dict().items():
            assert torch.equal(value, y.state_dict()[key]), f"{name}.{key}"


def _render(models):
    src = images(1, seed=5)
    with torch.inference_mode():
        feature = models.appearance_feature_extractor(src)
        from avatarify_app.motion import transform_keypoint

        x = transform_keypoint(models.motion_extractor(src))
        out = models.warping_module(feature, kp_driving=x * 0.9, kp_source=x)
        return models.spade_generator(feature=out["out"])


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_folder_loads_exactly_in_eval_mode(tmp_path, suffix):
    ref, folder = _saved(tmp_path, suffix=suffix)
    models = load_liveportrait(folder, tiny_params(num_kp=5))
    _same_weights(ref, models)
    assert set(models.stitching_retargeting_module) == {"stitching", "lip", "eye"}
    assert not any(m.training for _, net in models.named_networks() for m in net.modules())
    assert torch.equal(_render(models), _render(ref))


def test_module_prefix_on_retargeting_keys_is_removed(tmp_path):
    ref, folder = _saved(tmp_path, module_prefix=True)
    raw = torch.load(folder / "retargeting_models" / "stitching_retargeting_module.pth", weights_only=True)
    assert all(k.startswith("module.") for k in raw["retarget_eye"])
    _same_weights(ref, load_liveportrait(folder, tiny_params(num_kp=5)))


def test_files_without_batch_counters_load(tmp_path):
    """Converted files may drop BatchNorm's num_batches_tracked (it does not affect outputs)."""
    from safetensors.torch import load_file, save_file

    ref, folder = _saved(tmp_path, suffix=".safetensors")
    path = folder / "base_models" / "warping_module.safetensors"
    sd = load_file(str(path))
    save_file({k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}, str(path))
    models = load_liveportrait(folder, tiny_params(num_kp=5))
    assert torch.equal(_render(models), _render(ref))


def test_safetensors_preferred_where_both_exist(tmp_path):
    ref, folder = _saved(tmp_path, suffix=".safetensors", seed=1)
    _, other_folder = _saved(tmp_path, name="other", seed=2)
    for sub in ("base_models", "retargeting_models"):
        for f in (other_folder / sub).iterdir():
            shutil.copy(f, folder / sub / f.name)
    _same_weights(ref, load_liveportrait(folder, tiny_params(num_kp=5)))


def test_without_retargeting_file_it_is_none(tmp_path):
    _, folder = _saved(tmp_path)
    (folder / "retargeting_models" / "stitching_retargeting_module.pth").unlink()
    models = load_liveportrait(folder, tiny_params(num_kp=5))
    assert models.stitching_retargeting_module is None
    assert [n for n, _ in models.named_networks()] == list(NAMES)


def test_missing_base_file_names_the_layout(tmp_path):
    _, folder = _saved(tmp_path)
    (folder / "base_models" / "warping_module.pth").unlink()
    with pytest.raises(CheckpointError) as info:
        load_liveportrait(folder, tiny_params(num_kp=5))
    text = str(info.value)
    assert "base_models/warping_module.pth" in text and str(folder) in text
    assert "base_models/appearance_feature_extractor.pth" not in info.value.message  # only what is missing
    assert "retargeting_models/stitching_retargeting_module.pth" in info.value.hint
    assert "spade_generator" in info.value.hint


def test_missing_folder_and_folders_one_level_off(tmp_path):
    with pytest.raises(CheckpointError, match="folder not found") as info:
        load_liveportrait(tmp_path / "nowhere")
    assert "base_models/" in info.value.hint
    _, folder = _saved(tmp_path / "checkpoints", name="liveportrait")
    with pytest.raises(CheckpointError) as above:
        load_liveportrait(tmp_path / "checkpoints", tiny_params(num_kp=5))
    assert f"{folder} has that layout" in above.value.hint
    with pytest.raises(CheckpointError) as inside:
        load_liveportrait(folder / "base_models", tiny_params(num_kp=5))
    assert f"folder above it, {folder}" in inside.value.hint


def test_wrong_num_kp_says_which_setting(tmp_path):
    _, folder = _saved(tmp_path)  # num_kp 5
    with pytest.raises(CheckpointError) as info:
        load_liveportrait(folder, tiny_params(num_kp=8))
    text = str(info.value)
    assert "motion_extractor.pth" in text and "shape mismatch" in text
    assert "detector.fc_kp.weight is [15, 32] in the file, the model expects [24, 32]" in text
    assert "num_kp = 5" in info.value.hint


@pytest.mark.parametrize(("saved", "asked", "hint"), [
    ({"upscale": 1}, {"upscale": 2}, "upscale: 1"),
    ({"upscale": 2}, {"upscale": 1}, "upscale: 2"),
    ({"occlusion": False}, {"occlusion": True}, "estimate_occlusion_map: false"),
])
def test_other_mismatches_say_which_setting(tmp_path, saved, asked, hint):
    _, folder = _saved(tmp_path, params=tiny_params(num_kp=5, **saved))
    with pytest.raises(CheckpointError) as info:
        load_liveportrait(folder, tiny_params(num_kp=5, **asked))
    assert hint in info.value.hint


def test_reduced_backbone_mismatch_says_depths_and_dims(tmp_path):
    _, folder = _saved(tmp_path)
    params = tiny_params(num_kp=5, **{"motion_extractor_params.depths": [1, 2, 1, 1]})
    with pytest.raises(CheckpointError, match=r"unexpected keys|missing keys") as info:
        load_liveportrait(folder, params)
    assert "depths" in info.value.hint and "missing keys: detector.stages.1.1." in str(info.value)


def test_retargeting_file_checks(tmp_path):
    _, folder = _saved(tmp_path)
    path = folder / "retargeting_models" / "stitching_retargeting_module.pth"
    data = torch.load(path, weights_only=True)
    torch.save({k: v for k, v in data.items() if k != "retarget_eye"}, path)
    with pytest.raises(CheckpointError, match="no retarget_eye weights"):
        load_liveportrait(folder, tiny_params(num_kp=5))
    data["retarget_mouth"]["mlp.0.weight"] = torch.zeros(16, 99)
    torch.save(data, path)
    with pytest.raises(CheckpointError) as info:
        load_liveportrait(folder, tiny_params(num_kp=5))
    assert "retarget_mouth" in str(info.value) and "input_size: 99" in info.value.hint
    torch.save([1, 2], path)
    with pytest.raises(CheckpointError, match="not the retargeting dict"):
        load_liveportrait(folder, tiny_params(num_kp=5))


class _Payload:
    """Unpickling this creates a file (through builtins.open)."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


@pytest.mark.parametrize("as_zip", [True, False])
def test_unsafe_pickle_is_refused_without_running(tmp_path, as_zip):
    _, folder = _saved(tmp_path)
    target = tmp_path / "pwned.txt"
    path = folder / "base_models" / "spade_generator.pth"
    data = {"fc.weight": _Payload(target)}
    if as_zip:
        torch.save(data, path)
    else:
        path.write_bytes(pickle.dumps(data))
    with pytest.raises(CheckpointError) as info:
        load_liveportrait(folder, tiny_params(num_kp=5))
    assert not target.exists(), "loading ran code"
    assert str(path) in str(info.value) and "refused" in str(info.value).lower()


def test_a_web_page_instead_of_weights(tmp_path):
    _, folder = _saved(tmp_path)
    path = folder / "base_models" / "motion_extractor.pth"
    path.write_text("<!DOCTYPE html><html><body>Sign in</body></html>")
    with pytest.raises(CheckpointError, match="web page") as info:
        load_liveportrait(folder, tiny_params(num_kp=5))
    assert str(path) in str(info.value) and "LivePortrait" in info.value.hint


def test_authors_yaml_loads_and_bad_configs_say_why(tmp_path):
    cfg = tmp_path / "models.yaml"
    cfg.write_text(yaml.safe_dump({"model_params": tiny_params(), "other": {"x": 1}}))
    assert load_model_params(cfg) == tiny_params()
    bad = tiny_params(**{"motion_extractor_params.colour": 3})
    with pytest.raises(ConfigError, match="unknown keys in motion_extractor_params: colour"):
        load_model_params(bad)
    with pytest.raises(ConfigError, match=r"warping_module_params.num_kp \(21\) must equal"):
        load_model_params(tiny_params(**{"motion_extractor_params.num_kp": 8}))
    with pytest.raises(ConfigError, match="needs input_size 42"):
        load_model_params(tiny_params(num_kp=7, **{"stitching_retargeting_module_params.stitching.input_size": 40}))
    with pytest.raises(ConfigError, match="lacks spade_generator_params"):
        load_model_params({k: v for k, v in tiny_params().items() if k != "spade_generator_params"})
    with pytest.raises(ConfigError, match="lacks dense_motion_params"):
        load_model_params(tiny_params(**{"warping_module_params.dense_motion_params": None}))
    with pytest.raises(ConfigError, match="backbone"):
        build_liveportrait(tiny_params(**{"motion_extractor_params.backbone": "resnet50"}))
    with pytest.raises(ConfigError, match="upscale must be 1 or 2"):
        build_liveportrait(tiny_params(upscale=4))
    with pytest.raises(ConfigError, match="not found"):
        load_model_params(tmp_path / "missing.yaml")
