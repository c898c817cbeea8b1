"""Checkpoints load safely (weights only) and strictly, and every failure says what to do."""

from __future__ import annotations

import pickle

import pytest
import torch

from avatarify_app.errors import CheckpointError
from avatarify_app.models import build_models, load_fomm, load_model_params


def _save(path, tiny_params, randomized, extra=None, **overrides):
    kp_detector, generator = build_models(load_model_params(tiny_params(**overrides)))
    randomized(kp_detector, 1)
    randomized(generator, 2)
    data = {"kp_detector": kp_detector.state_dict(), "generator": generator.state_dict(), **(extra or {})}
    torch.save(data, path)
    return kp_detector, generator


def test_authors_training_format_loads(tmp_path, tiny, randomized):
    path = tmp_path / "train.pth.tar"
    extra = {"discriminator": {"w": torch.zeros(2)}, "optimizer_generator": {"state": {}, "param_groups": []},
             "optimizer_kp_detector": {"state": {}}, "optimizer_discriminator": {"state": {}}, "epoch": 99}
    kp_ref, gen_ref = _save(path, tiny, randomized, extra)
    kp_detector, generator = load_fomm(path, tiny())
    assert not kp_detector.training and not generator.training
    for a, b in ((kp_ref, kp_detector), (gen_ref, generator)):
        for key, value in a.state_dict().items():
            assert torch.equal(value, b.state_dict()[key]), key


def test_plain_dict_and_yaml_config(tmp_path, tiny, randomized):
    import yaml

    path = tmp_path / "plain.pth"
    _save(path, tiny, randomized)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({"model_params": tiny(), "train_params": {"epochs": 1}}))
    kp_detector, _ = load_fomm(path, cfg)
    assert kp_detector.num_kp == 4


class _Payload:
    """Unpickling this creates a file (through builtins.open)."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


@pytest.mark.parametrize("as_zip", [True, False])
def test_malicious_pickle_is_refused_without_running(tmp_path, as_zip):
    target = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pth.tar"
    data = {"generator": _Payload(target), "kp_detector": {}}
    if as_zip:
        torch.save(data, path)
    else:
        path.write_bytes(pickle.dumps(data))
    with pytest.raises(CheckpointError) as info:
        load_fomm(path)
    assert not target.exists(), "loading the checkpoint ran code"
    assert str(path) in str(info.value)
    assert "refused" in str(info.value).lower() and "open" in str(info.value)
    if not as_zip:  # the payload is real: plain unpickling does create the file
        with path.open("rb") as fh:
            pickle.load(fh)  # demonstrating the danger on purpose
        assert target.exists()


def test_missing_file(tmp_path):
    path = tmp_path / "missing.pth.tar"
    with pytest.raises(CheckpointError, match="not found") as info:
        load_fomm(path)
    assert str(path) in str(info.value) and info.value.hint


def test_directory_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not a file"):
        load_fomm(tmp_path)


def test_text_file(tmp_path):
    path = tmp_path / "notes.pth.tar"
    path.write_text("hello, this is not a checkpoint\n")
    with pytest.raises(CheckpointError) as info:
        load_fomm(path)
    assert str(path) in str(info.value)


def test_plain_tensor(tmp_path):
    path = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), path)
    with pytest.raises(CheckpointError, match="Tensor"):
        load_fomm(path)


def test_dict_without_the_parts(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "epoch": 3}, path)
    with pytest.raises(CheckpointError, match=r"no kp_detector or generator weights .*model"):
        load_fomm(path)


def test_part_that_is_not_a_state_dict(tmp_path):
    path = tmp_path / "odd.pth"
    torch.save({"generator": [1, 2], "kp_detector": {}}, path)
    with pytest.raises(CheckpointError, match="not a state dict"):
        load_fomm(path)


def test_truncated_file(tmp_path, tiny, randomized):
    path = tmp_path / "cut.pth.tar"
    _save(path, tiny, randomized)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated") as info:
        load_fomm(path, tiny())
    assert str(path) in str(info.value)


def test_missing_and_unexpected_keys(tmp_path, tiny, randomized):
    kp_detector, generator = build_models(load_model_params(tiny()))
    gsd = generator.state_dict()
    del gsd["final.weight"]
    gsd["extra.weight"] = torch.zeros(1)
    path = tmp_path / "keys.pth"
    torch.save({"kp_detector": kp_detector.state_dict(), "generator": gsd}, path)
    with pytest.raises(CheckpointError) as info:
        load_fomm(path, tiny())
    text = str(info.value)
    assert "missing keys: final.weight" in text and "unexpected keys: extra.weight" in text
    assert str(path) in text and "generator" in text


def test_shape_mismatch_names_num_kp(tmp_path, tiny, randomized):
    path = tmp_path / "kp6.pth"
    _save(path, tiny, randomized, **{"common_params.num_kp": 6})
    with pytest.raises(CheckpointError) as info:
        load_fomm(path, tiny())
    assert "shape mismatch" in info.value.message
    assert "num_kp = 6" in info.value.hint


def test_single_jacobian_map_hint(tmp_path, tiny, randomized):
    path = tmp_path / "mgif.pth"
    _save(path, tiny, randomized, **{"kp_detector_params.single_jacobian_map": True})
    with pytest.raises(CheckpointError) as info:
        load_fomm(path, tiny())
    assert "jacobian.weight is [4," in info.value.message
    assert "single_jacobian_map: true" in info.value.hint
    kp_detector, _ = load_fomm(path, tiny(**{"kp_detector_params.single_jacobian_map": True}))
    assert kp_detector.num_jacobian_maps == 1


def test_estimate_jacobian_and_occlusion_hints(tmp_path, tiny, randomized):
    path = tmp_path / "nojac.pth"
    _save(path, tiny, randomized, **{"common_params.estimate_jacobian": False,
                                     "generator_params.estimate_occlusion_map": False})
    with pytest.raises(CheckpointError) as info:
        load_fomm(path, tiny())
    assert "estimate_jacobian: false" in info.value.hint
    with pytest.raises(CheckpointError) as info:
        load_fomm(path, tiny(**{"common_params.estimate_jacobian": False}))
    assert "estimate_occlusion_map: false" in info.value.hint


def test_data_parallel_prefix_is_accepted(tmp_path, tiny, randomized):
    kp_detector, generator = build_models(load_model_params(tiny()))
    path = tmp_path / "dp.pth"
    torch.save({"kp_detector": {f"module.{k}": v for k, v in kp_detector.state_dict().items()},
                "generator": generator.state_dict()}, path)
    load_fomm(path, tiny())


def test_random_bytes_are_not_called_malicious(tmp_path):
    """Garbage trips the same unpickler, but it is a broken file, not an attack: say so."""
    from avatarify_app.errors import CheckpointError
    from avatarify_app.models import load_fomm

    path = tmp_path / "noise.pth.tar"
    path.write_bytes(bytes([0x80, 0x02, 0x21]) + bytes(range(256)) * 8)
    with pytest.raises(CheckpointError) as info:
        load_fomm(path)
    text = str(info.value)
    assert "not a PyTorch checkpoint" in text and str(path) in text
    assert "run code" not in text and "weights_only" not in text
