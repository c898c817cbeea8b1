"""create_engine: auto picks, and a checkpoint of another shape loads through its YAML."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml

from avatarify_app.config import EngineConfig
from avatarify_app.engines import create_engine, model_config_for, resolve_engine_name
from avatarify_app.errors import CheckpointError, ConfigError


def test_auto_without_checkpoint_is_landmarks(tmp_path, monkeypatch):
    monkeypatch.setattr("avatarify_app.engines.find_checkpoint", lambda: None)
    assert resolve_engine_name(EngineConfig()) == ("landmarks", None)
    with pytest.raises(CheckpointError, match="checkpoints/"):
        create_engine(EngineConfig(name="fomm"))
    with pytest.raises(ConfigError):
        resolve_engine_name(EngineConfig(name="nope"))


def test_model_config_lookup(tmp_path):
    ckpt = tmp_path / "my-model.pth.tar"
    ckpt.write_bytes(b"")
    assert model_config_for(EngineConfig(), ckpt) is None
    (tmp_path / "my-model.yaml").write_text("model_params: {}\n")
    assert model_config_for(EngineConfig(), ckpt) == tmp_path / "my-model.yaml"
    with pytest.raises(ConfigError, match="not found"):
        model_config_for(EngineConfig(model_config=str(tmp_path / "missing.yaml")), ckpt)


def test_small_checkpoint_loads_with_a_yaml_beside_it(tmp_path, shared_fomm):
    import json

    ckpt = tmp_path / "small.pth.tar"
    shutil.copy(shared_fomm / "small_vox.pth.tar", ckpt)
    config = EngineConfig(name="fomm", checkpoint=str(ckpt), device="cpu", backend="torch")
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
