"""The engine registry: auto picks and says why, a FOMM checkpoint is recognised by its keys,
and a checkpoint of another shape loads through its YAML."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
import yaml

from avatarify_app.config import EngineConfig
from avatarify_app.engines import REGISTRY, create_engine
from avatarify_app.engines.fomm import find_checkpoint, model_config_for
from avatarify_app.errors import CheckpointError, ConfigError


def test_auto_without_checkpoint_is_landmarks_and_says_why(monkeypatch):
    monkeypatch.setattr("avatarify_app.engines.fomm.find_checkpoint", lambda directory=None: None)
    choice = REGISTRY.choose(EngineConfig())
    assert choice.name == "landmarks" and choice.config.name == "landmarks"
    assert "fomm: skipped (no FOMM checkpoint" in choice.explain()
    assert "landmarks: chosen" in choice.explain()
    with pytest.raises(CheckpointError, match="checkpoints/"):
        create_engine(EngineConfig(name="fomm"))
    with pytest.raises(ConfigError, match="Unknown engine 'nope'"):
        REGISTRY.choose(EngineConfig(name="nope"))


def test_auto_picks_fomm_when_a_checkpoint_is_found(monkeypatch, tmp_path):
    ckpt = tmp_path / "vox-cpk.pth.tar"
    torch.save({"kp_detector": {}, "generator": {}}, ckpt)
    monkeypatch.setattr("avatarify_app.engines.fomm.find_checkpoint", lambda directory=None: ckpt)
    choice = REGISTRY.choose(EngineConfig())
    assert choice.name == "fomm" and str(ckpt) in choice.explain()


def test_find_checkpoint_recognises_fomm_files_by_their_keys(tmp_path, caplog):
    assert find_checkpoint(tmp_path) is None
    other = tmp_path / "aaa-other-model.pth.tar"
    torch.save({"model": {"w": torch.zeros(1)}}, other)
    broken = tmp_path / "broken.pth.tar"
    broken.write_bytes(b"not a checkpoint")
    assert find_checkpoint(tmp_path) is None
    assert "aaa-other-model.pth.tar is not a FOMM checkpoint" in caplog.text
    mine = tmp_path / "mine.pth"
    torch.save({"kp_detector": {"a": torch.zeros(1)}, "generator": {"b": torch.zeros(1)}}, mine)
    assert find_checkpoint(tmp_path) == mine
    legacy = tmp_path / "vox-cpk.pth.tar"  # the authors' name, in torch's legacy (non-ZIP) format
    torch.save({"kp_detector": {}, "generator": {}}, legacy, _use_new_zipfile_serialization=False)
    assert find_checkpoint(tmp_path) == legacy


def test_model_config_lookup(tmp_path):
    ckpt = tmp_path / "my-model.pth.tar"
    ckpt.write_bytes(b"")
    assert model_config_for(EngineConfig(), ckpt) is None
    (tmp_path / "my-model.yaml").write_text("model_params: {}\n")
    assert model_config_for(EngineConfig(), ckpt) == tmp_path / "my-model.yaml"
    with pytest.raises(ConfigError, match="not found"):
        model_config_for(EngineConfig(options={"model_config": str(tmp_path / "missing.yaml")}), ckpt)


def test_options_are_checked_against_the_engine():
    with pytest.raises(ConfigError, match="not one of"):
        REGISTRY.checked(EngineConfig(name="fomm", options={"backend": "tensorrt"}))
    with pytest.raises(ConfigError, match="No engine has an option 'colour'"):
        REGISTRY.checked(EngineConfig(name="landmarks", options={"colour": "red"}))
    # Another engine's option rides along unused (the GUI keeps every engine's settings).
    assert REGISTRY.checked(EngineConfig(name="landmarks", options={"backend": "onnx"})).options == {}


def test_small_checkpoint_loads_with_a_yaml_beside_it(tmp_path, shared_fomm):
    import json

    ckpt = tmp_path / "small.pth.tar"
    shutil.copy(shared_fomm / "small_vox.pth.tar", ckpt)
    config = EngineConfig(name="fomm", device="cpu", options={"checkpoint": str(ckpt), "backend": "torch"})
    with pytest.raises(CheckpointError, match="do not fit"):
        create_engine(config)  # vox-256 shapes: refused, with the file named
    params = json.loads((shared_fomm / "small_vox.json").read_text())["model_params"]
    (tmp_path / "small.yaml").write_text(yaml.safe_dump({"model_params": params}))
    engine = create_engine(config)
    try:
        face = np.full((256, 256, 3), 128, np.uint8)
        engine.set_source(face)
        out = engine.predict(face)
        assert out.shape == (256, 256, 3) and out.dtype == np.uint8
    finally:
        engine.close()


def test_fallback_is_the_engine_that_needs_nothing(monkeypatch, tmp_path):
    ckpt = tmp_path / "vox-cpk.pth.tar"
    torch.save({"kp_detector": {}, "generator": {}}, ckpt)
    monkeypatch.setattr("avatarify_app.engines.fomm.find_checkpoint", lambda directory=None: ckpt)
    assert REGISTRY.fallback().name == "landmarks"
