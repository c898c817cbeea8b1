"""Fixtures for the LivePortrait engine tests: tiny networks with seeded weights (lp_helpers of
the model tests) in the released folder layout, an engine on them, and real portrait crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from lp_engine_helpers import TINY_INPUT, save_folder, tiny_models, tiny_params

from avatarify_app.paths import AVATARS_DIR


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread: on a busy 2-core machine two threads make these tiny networks
    several times slower (the oracle tests: 20 s against 2 s); restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory) -> tuple[Path, Path]:
    """(weights folder in the released layout, models.yaml) for the tiny seeded networks."""
    root = tmp_path_factory.mktemp("lp_tiny")
    save_folder(tiny_models(), root / "liveportrait")
    config = root / "models.yaml"
    config.write_text(yaml.safe_dump({"model_params": tiny_params()}))
    return root / "liveportrait", config


@pytest.fixture
def make_engine():
    """LivePortraitEngine on fresh tiny networks (64 px network input), CPU float32 by default."""
    from avatarify_app.engines.liveportrait.engine import LivePortraitEngine

    engines = []

    def make(models=None, **kwargs):
        kwargs.setdefault("device", "cpu")
        kwargs.setdefault("backend", "torch")
        kwargs.setdefault("input_size", TINY_INPUT)
        engine = LivePortraitEngine(models if models is not None else tiny_models(), **kwargs)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


@pytest.fixture(scope="session")
def portraits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The shipped avatars aligned at 512: name -> (crop, (468, 2) landmarks in crop px)."""
    from avatarify_app.config import CropConfig, TrackingConfig
    from avatarify_app.tracking import PortraitAligner

    out = {}
    with PortraitAligner(TrackingConfig(crop=CropConfig(size=512))) as aligner:
        for path in sorted(AVATARS_DIR.glob("*.png")):
            aligned = aligner.align(path)
            out[path.stem] = (aligned.image, aligned.landmarks)
    return out
