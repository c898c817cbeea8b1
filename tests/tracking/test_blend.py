from __future__ import annotations

import numpy as np
import pytest

from avatarify_app.tracking import CropBox, paste_back


def test_pasting_the_crop_itself_changes_little(astronaut):
    box = CropBox(130, 120, 150)
    crop = box.extract(astronaut, 256)
    out = paste_back(astronaut, crop, box)
    assert out.shape == astronaut.shape and out.dtype == np.uint8
    diff = np.abs(out.astype(int) - astronaut.astype(int))
    assert diff.mean() < 1.0
    assert out is not astronaut


def test_feathered_edge_and_untouched_outside():
    full = np.zeros((400, 400, 3), np.uint8)
    crop = np.full((256, 256, 3), 200, np.uint8)
    box = CropBox(200, 200, 200)
    out = paste_back(full, crop, box)
    assert np.all(out[200, 200] == 200)  # centre: the crop
    assert np.all(out[:95] == 0) and np.all(out[:, 305:] == 0)  # outside the box: unchanged
    row = out[200, 100:200, 0].astype(int)  # left edge -> centre: a smooth ramp, no step
    assert row[0] < 20 and row[-1] == 200
    assert np.all(np.diff(row) >= 0) and np.max(np.diff(row)) < 25


def test_box_past_the_border_keeps_edge_content():
    full = np.zeros((300, 300, 3), np.uint8)
    crop = np.full((256, 256, 3), 255, np.uint8)
    out = paste_back(full, crop, CropBox(0, 150, 200))  # left half beyond the picture
    assert np.all(out[150, :60] == 255)  # no seam at the picture's own edge
    assert out[150, 99, 0] < 40  # feathered where the box ends inside the picture


def test_small_box_and_validation(rng):
    full = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    crop = np.full((256, 256, 3), 10, np.uint8)
    out = paste_back(full, crop, CropBox(320, 240, 64))
    assert np.all(out[240, 320] == 10)
    with pytest.raises(ValueError):
        paste_back(full, crop[:, :200].copy(), CropBox(320, 240, 64))
    with pytest.raises(ValueError):
        paste_back(full.astype(np.float32), crop, CropBox(320, 240, 64))
