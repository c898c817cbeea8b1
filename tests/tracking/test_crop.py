from __future__ import annotations

import numpy as np
import pytest

from avatarify_app.config import CropConfig
from avatarify_app.tracking import CropBox, crop_box_for_landmarks, face_size
from avatarify_app.tracking.crop import CENTRE_DROP, CHEEK_LEFT, CHEEK_RIGHT, CHIN, FACE_FRACTION, FOREHEAD


def test_to_crop_and_back_are_inverse(rng):
    box = CropBox(120.5, 80.25, 333.0)
    pts = rng.uniform(-50, 400, (468, 2)).astype(np.float32)
    back = box.to_image(box.to_crop(pts, 256), 256)
    np.testing.assert_allclose(back, pts, atol=1e-3)
    corners = box.to_crop(np.array([[box.x0, box.y0], [box.x0 + box.side, box.y0 + box.side]]), 256)
    np.testing.assert_allclose(corners, [[0, 0], [256, 256]], atol=1e-4)


def test_extract_identity_and_shift(rng):
    img = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    same = CropBox(32, 32, 64).extract(img, 64)
    np.testing.assert_array_equal(same, img)
    shifted = CropBox(33, 32, 64).extract(img, 64)  # one px to the right
    np.testing.assert_array_equal(shifted[:, :-1], img[:, 1:])
    assert shifted.dtype == np.uint8 and shifted.flags.c_contiguous


def test_extract_outside_replicates_border():
    img = np.zeros((100, 100, 3), np.uint8)
    img[:, :50] = 200  # left half bright
    crop = CropBox(0, 50, 100).extract(img, 100)  # half the box is left of the image
    assert np.all(crop[:, :50] == 200)
    far = CropBox(-1000, -1000, 50).extract(img, 32)  # entirely outside: the corner pixel
    assert np.all(far == 200)


def test_extract_big_shrink_is_area_filtered():
    # 1-px stripes average to grey when shrunk 8x, instead of aliasing to black or white.
    img = np.zeros((2048, 2048, 3), np.uint8)
    img[:, ::2] = 255
    crop = CropBox(1024, 1024, 2048).extract(img, 256)
    assert abs(float(crop[8:-8, 8:-8].mean()) - 127.5) < 3
    assert float(crop[8:-8, 8:-8].std()) < 4


def test_nudges():
    box = CropBox(100, 100, 200)
    z = box.nudged(CropConfig(zoom=2.0))
    assert (z.cx, z.cy, z.side) == (100, 100, 100)
    o = box.nudged(CropConfig(offset_x=0.1, offset_y=-0.2))
    assert (o.cx, o.cy, o.side) == pytest.approx((120, 60, 200))


def test_invalid_box():
    with pytest.raises(ValueError):
        CropBox(0, 0, 0)
    with pytest.raises(ValueError):
        CropBox(float("nan"), 0, 10)


def _synthetic_mesh(cx: float, cy: float, height: float, angle_deg: float = 0.0) -> np.ndarray:
    pts = np.zeros((468, 2), np.float32)
    pts[FOREHEAD] = (0, -height / 2)
    pts[CHIN] = (0, height / 2)
    pts[CHEEK_RIGHT] = (-height / 2.4, 0)
    pts[CHEEK_LEFT] = (height / 2.4, 0)
    a = np.deg2rad(angle_deg)
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return (pts @ r.T + (cx, cy)).astype(np.float32)


def test_framing_constants():
    box = crop_box_for_landmarks(_synthetic_mesh(300, 200, 100))
    assert box.side == pytest.approx(100 / FACE_FRACTION)
    assert box.cx == pytest.approx(300)
    assert box.cy == pytest.approx(200 + CENTRE_DROP * box.side)
    # Roll does not change the size.
    assert crop_box_for_landmarks(_synthetic_mesh(300, 200, 100, 30)).side == pytest.approx(box.side, rel=1e-5)
    # A pitched face (short oval) keeps its size through the width.
    pitched = _synthetic_mesh(300, 200, 100)
    pitched[[FOREHEAD, CHIN]] *= (1, 0.7)
    pitched[[FOREHEAD, CHIN]] += (0, 200 * 0.3)
    assert face_size(pitched) > 95


def test_fitted_inside_pulls_a_photo_box_in_but_keeps_the_framing():
    from avatarify_app.tracking import CropBox

    # Overflows left and bottom of a 602x602 picture by a little: fits exactly after the fix.
    box = CropBox(261.0, 346.0, 607.0).fitted_inside(602, 602)
    assert box.side == 602.0
    assert box.x0 == 0.0 and box.y0 == 0.0
    # Far off the picture: moves at most 12% of the side, shrinks at most to 80%.
    far = CropBox(0.0, 100.0, 400.0).fitted_inside(300, 1000)
    assert far.side == 320.0
    assert abs(far.cx - 0.0) <= 0.12 * 320 + 1e-9
    # Already inside: unchanged.
    inside = CropBox(500.0, 400.0, 200.0)
    assert inside.fitted_inside(1000, 1000) == inside
