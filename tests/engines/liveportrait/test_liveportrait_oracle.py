"""The engine's per-frame maths against the authors' own pipeline (data/README.md says how the
arrays were made): for each setting, the source keypoints, the keypoints the warping module
gets for every driving frame, and (for three settings) the decoded image and occlusion map."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from lp_engine_helpers import DATA, tiny_models

from avatarify_app.engines.liveportrait.ratios import OpenRatios

TOL = 1e-4
META = json.loads((DATA / "engine_cases.json").read_text())
CASES = sorted(META["cases"])


@pytest.fixture(scope="module")
def arrays():
    return dict(np.load(DATA / "engine_cases.npz"))


@pytest.fixture(scope="module")
def models():
    return tiny_models(seed=META["seed"])


def controls_for(case: dict, expression_friendly: bool = False) -> dict:
    return {"stitching": case["flag_stitching"], "driving_multiplier": case["driving_multiplier"],
            "animation_region": case["animation_region"], "normalize_lip": case["flag_normalize_lip"],
            "expression_friendly": expression_friendly}


def run_case(engine, arrays, name: str, expression_friendly: bool = False):
    case = META["cases"][name]
    assert not case["flag_eye_retargeting"] and not case["flag_lip_retargeting"]
    engine.settings = engine.settings.changed(relative=case["flag_relative_motion"])
    engine.set_controls(controls_for(case, expression_friendly))
    engine.set_source_crop(arrays["source"], OpenRatios(*map(float, arrays["source_ratios"])))
    engine.set_reference(None)
    engine.set_reference_crop(arrays["driving"][0])
    x_d = [engine.driving_keypoints(frame, OpenRatios(*map(float, r))).numpy()
           for frame, r in zip(arrays["driving"], arrays["driving_ratios"], strict=True)]
    return engine._driver.x_s.numpy(), np.concatenate(x_d)


@pytest.mark.parametrize("name", CASES)
def test_keypoints_match_the_authors_pipeline(make_engine, models, arrays, name):
    engine = make_engine(models, size=META["size"], output_size=META["size"], input_size=META["size"])
    x_s, x_d = run_case(engine, arrays, name)
    np.testing.assert_allclose(x_s, arrays[f"{name}/x_s"], atol=TOL, rtol=0)
    np.testing.assert_allclose(x_d, arrays[f"{name}/x_d"], atol=TOL, rtol=0)
    # the motion is real: frames differ from the source and from each other
    assert np.abs(x_d[1:] - x_s).max() > 1e-3
    assert np.abs(np.diff(x_d, axis=0)).max() > 1e-4


@pytest.mark.parametrize("name", [n for n in CASES if META["cases"][n]["flag_relative_motion"]])
def test_expression_friendly_changes_nothing_in_relative_mode(make_engine, models, arrays, name):
    """The authors' default ("expression-friendly") in relative mode: the reference maps to the
    source, so the hull multiplier is 1 and their arrays hold with it on as with it off."""
    engine = make_engine(models, size=META["size"], output_size=META["size"], input_size=META["size"])
    _, x_d = run_case(engine, arrays, name, expression_friendly=True)
    np.testing.assert_allclose(x_d, arrays[f"{name}/x_d"], atol=TOL, rtol=0)


@pytest.mark.parametrize("name", sorted(k.split("/")[0] for k in np.load(DATA / "engine_cases.npz").files
                                        if k.endswith("/out_last")))
def test_last_frame_image_matches(make_engine, models, arrays, name):
    engine = make_engine(models, size=META["size"], output_size=META["size"], input_size=META["size"])
    run_case(engine, arrays, name)
    frame = engine.predict_crop(arrays["driving"][-1])
    out = engine.runtime.warp_decode(engine._source.feature, engine._driver.x_s,
                                     torch.from_numpy(arrays[f"{name}/x_d"][-1:]))
    np.testing.assert_allclose(out["out"].numpy(), arrays[f"{name}/out_last"], atol=TOL, rtol=0)
    np.testing.assert_allclose(out["occlusion_map"].numpy(), arrays[f"{name}/occlusion_last"], atol=TOL, rtol=0)
    # predict_crop returns the same image as a frame
    expected = np.clip(arrays[f"{name}/out_last"][0].transpose(1, 2, 0), 0, 1) * 255
    assert frame.shape == expected.shape and frame.dtype == np.uint8
    assert np.abs(frame.astype(np.float32) - expected).max() <= 0.51 + 255 * TOL
