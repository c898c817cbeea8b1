"""The optional face_alignment back-end: never downloads; used only with weights on disk."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from avatarify_app.config import TrackingConfig
from avatarify_app.tracking import PortraitAligner
from avatarify_app.tracking.fan_backend import FanLandmarks, fan_weights_path


def test_weights_path_follows_torch_home(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = fan_weights_path()
    assert path == tmp_path / "hub" / "checkpoints" / "2DFAN4-11f355bf06.pth.tar"


def test_missing_weights_warn_and_return_none(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with caplog.at_level(logging.WARNING):
        assert FanLandmarks.if_available() is None
    assert "never downloads" in caplog.text and str(fan_weights_path()) in caplog.text
    assert not any(tmp_path.rglob("*"))  # not even the folder was created


@pytest.mark.slow
def test_weights_on_disk_are_used(monkeypatch, tmp_path, astronaut):
    """Random FAN weights saved where face_alignment keeps them: the back-end loads and runs."""
    import torch
    from face_alignment.models import FAN

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = fan_weights_path()
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(FAN(4).state_dict(), path)
    with PortraitAligner(TrackingConfig(backend="face_alignment")) as aligner:
        face = aligner.find_face(astronaut)
    assert face.landmarks is not None and face.landmarks.shape == (468, 2)
    assert face.landmarks68 is not None and face.landmarks68.shape == (68, 2)
    assert np.all(np.isfinite(face.landmarks68))
