"""The authors' crops found from our mesh, cutting them and pasting the result back: geometry on
real portraits (the shipped avatars, aligned by our tracker at 512) and round trips."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from avatarify_app.engines.liveportrait.crop import (
    DRIVING_RULE,
    EXTENT,
    SOURCE_RULE,
    PasteBack,
    Window,
    cut,
    feather_mask,
    window_for,
)


def turn(points: np.ndarray, degrees: float, centre=(256.0, 256.0), shift=(0.0, 0.0)) -> np.ndarray:
    a = math.radians(degrees)
    r = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    c = np.asarray(centre)
    return ((np.asarray(points, np.float64) - c) @ r.T + c + np.asarray(shift)).astype(np.float32)


def test_source_crop_on_real_portraits(portraits):
    for name, (_crop, lms) in portraits.items():
        w = window_for(lms, SOURCE_RULE)
        # about 0.8 of our crop's side: from a 512 crop, the 256 network input is never enlarged
        assert 0.75 * 512 < w.side < 0.9 * 512, name
        assert w.side > 256
        # the face is inside, upright, a little above the middle (vy -0.125 shows the forehead)
        local = (lms @ w.to_window(256)[:, :2].T + w.to_window(256)[:, 2])[list(EXTENT)]
        assert local.min() > 256 * 0.15 and local.max() < 256 * 0.85, name
        assert abs(math.degrees(w.angle)) < 8, name
        eyes_y = local[:, 1].min()
        assert eyes_y < 256 * 0.45, name


def test_source_crop_turns_with_the_head_and_driving_crop_does_not(portraits):
    _, lms = portraits["mona_lisa"]
    upright = window_for(lms, SOURCE_RULE)
    rolled = window_for(turn(lms, 25.0, shift=(7.0, -5.0)), SOURCE_RULE)
    assert math.degrees(rolled.angle - upright.angle) == pytest.approx(25.0, abs=0.01)
    assert rolled.side == pytest.approx(upright.side, rel=1e-4)
    moved = turn(np.array([[upright.cx, upright.cy]]), 25.0, shift=(7.0, -5.0))[0]
    assert (rolled.cx, rolled.cy) == pytest.approx((float(moved[0]), float(moved[1])), abs=1e-2)
    driving = window_for(turn(lms, 25.0), DRIVING_RULE)
    assert driving.angle == 0.0
    # same box as the source rule's but for its own scale and offset
    d_up = window_for(lms, DRIVING_RULE)
    assert d_up.side / upright.side == pytest.approx(2.2 / 2.3, rel=1e-6)


def test_cut_puts_image_points_where_the_window_says():
    image = np.zeros((512, 512, 3), np.uint8)
    spots = np.array([[200.5, 180.5], [330.5, 300.5]], np.float32)
    for x, y in spots:
        cv2.circle(image, (int(x), int(y)), 4, (255, 255, 255), -1)
    image = cv2.GaussianBlur(image, (0, 0), 3)
    window = Window(260.0, 250.0, 300.0, math.radians(20))
    out = cut(image, window, 128)
    expected = spots @ window.to_window(128)[:, :2].T + window.to_window(128)[:, 2]
    for ex in expected:
        x0, y0 = int(ex[0]) - 6, int(ex[1]) - 6
        patch = out[y0:y0 + 12, x0:x0 + 12, 0].astype(np.float64)
        ys, xs = np.mgrid[y0:y0 + 12, x0:x0 + 12] + 0.5
        centre = np.array([(patch * xs).sum(), (patch * ys).sum()]) / patch.sum()
        assert np.abs(centre - ex).max() < 0.5
    # and back: window px -> image px
    back = window.points_to_image(expected, 128)
    np.testing.assert_allclose(back, spots, atol=1e-3)


def test_feather_mask_is_one_inside_and_zero_at_the_edge():
    m = feather_mask(512)
    assert m[256, 256] == 1.0 and m[40:-40, 40:-40].min() == 1.0
    assert m[0].max() < 0.01 and m[:, 0].max() < 0.01
    assert np.all(np.diff(m[256, :40]) >= 0)


class IdentityRuntime:
    """Stands in for the networks: the 'decoded' image is the source crop itself."""

    name = "identity"

    def __init__(self, motion_net) -> None:
        self.motion_net = motion_net

    def appearance(self, image):
        return image.clone()

    def motion(self, image):
        with torch.inference_mode():
            return {k: v.float() for k, v in self.motion_net(image).items()}

    def warp_decode(self, feature_3d, kp_source, kp_driving):
        return {"out": feature_3d}

    def close(self):
        pass


@pytest.mark.parametrize("name", ["astronaut", "mona_lisa"])
def test_paste_back_round_trip(make_engine, portraits, name):
    from lp_engine_helpers import tiny_models

    models = tiny_models()
    engine = make_engine(models, input_size=256)
    engine.runtime = IdentityRuntime(models.motion_extractor)
    crop, lms = portraits[name]
    engine.set_source(crop, lms)
    out = engine.predict(crop, lms)
    assert out.shape == (512, 512, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    alpha = engine._source.paste.alpha[..., 0]
    outside = alpha == 0
    assert outside.mean() > 0.1  # the authors' crop does not cover our whole crop
    np.testing.assert_array_equal(out[outside], crop[outside])  # untouched outside the LivePortrait crop
    inside = alpha > 0.99
    assert inside.mean() > 0.4
    err = np.abs(out[inside].astype(np.int16) - crop[inside]).mean()
    assert err < 2.5  # cut to 256 and pasted back at 512: resampled, not moved


def test_paste_back_checks_the_size():
    paste = PasteBack(np.zeros((64, 64, 3), np.uint8), 64, Window(32, 32, 50), 32)
    with pytest.raises(ValueError, match="32x32"):
        paste(np.zeros((64, 64, 3), np.uint8))
