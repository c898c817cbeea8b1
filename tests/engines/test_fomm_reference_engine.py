"""The engine on the reference checkpoint reproduces the reference prediction (uint8 in and out)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from avatarify_app.config import MotionOptions
from avatarify_app.engines.fomm.engine import FommEngine
from avatarify_app.models import load_fomm

pytestmark = pytest.mark.needs_checkpoint


def _frame(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray((a[0].transpose(1, 2, 0) * 255.0).round().astype(np.uint8))


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_engine_matches_reference_prediction(shared_fomm, backend):
    meta = json.loads((shared_fomm / "small_vox.json").read_text())
    arrays = np.load(shared_fomm / "small_vox.npz")
    kp_detector, generator = load_fomm(shared_fomm / "small_vox.pth.tar", meta["model_params"])
    engine = FommEngine(kp_detector, generator, device="cpu", backend=backend,
                        options=MotionOptions(relative=True, adapt_scale=True))
    engine.set_source(_frame(arrays["source"]))
    engine.set_reference(_frame(arrays["driving_initial"]))
    out = engine.predict(_frame(arrays["driving"])).astype(np.float32) / 255.0
    # Inputs are quantised to uint8 here, so allow two steps of 1/255 on top of the output rounding.
    assert np.abs(out - arrays["relative_prediction"][0].transpose(1, 2, 0)).max() <= 2.5 / 255.0
    engine.set_options(MotionOptions(relative=False, adapt_scale=False))
    out = engine.predict(_frame(arrays["driving"])).astype(np.float32) / 255.0
    assert np.abs(out - arrays["absolute_prediction"][0].transpose(1, 2, 0)).max() <= 2.5 / 255.0
    engine.close()
