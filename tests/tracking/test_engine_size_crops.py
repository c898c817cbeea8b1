"""An engine that takes larger crops than the tracker makes (LivePortrait: 512 from 256
tracker crops) gets them cut from the picture itself, not enlarged: the avatar from the photo,
the driving crop from the camera frame."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from avatarify_app.tracking.crop import CropBox, recrop, sharp_face, to_size


def _detailed(h: int = 1200, w: int = 1000) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.ascontiguousarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def _detail(img: np.ndarray) -> float:
    """Mean absolute difference of neighbouring pixels: how much fine detail a picture has."""
    a = img.astype(np.float32)
    return float(np.abs(np.diff(a, axis=1)).mean())


def test_driving_crop_is_cut_from_the_frame_at_the_engines_size():
    frame = _detailed()
    box = CropBox(500.0, 600.0, 700.0)
    lms = np.array([[10.0, 20.0], [128.0, 128.0]], np.float32)
    result = SimpleNamespace(crop=box.extract(frame, 256), landmarks=lms, box=box)
    crop, scaled = recrop(frame, result.box, result.crop, result.landmarks, 512)
    assert crop.shape == (512, 512, 3)
    np.testing.assert_array_equal(crop, box.extract(frame, 512))
    np.testing.assert_allclose(scaled, lms * 2)
    enlarged, _ = to_size(result.crop, lms, 512)
    assert _detail(crop) > 1.3 * _detail(enlarged)
    # Same size or smaller: the tracker's crop as it is (resized).
    same, same_lms = recrop(frame, result.box, result.crop, result.landmarks, 256)
    assert same is result.crop and same_lms is lms


def test_avatar_is_cut_from_the_photo_at_its_own_resolution():
    photo = _detailed()
    box = CropBox(500.0, 600.0, 700.0)
    lms = np.array([[64.0, 64.0]], np.float32)
    aligned = SimpleNamespace(image=box.extract(photo, 256), landmarks=lms, box=box, full_shape=photo.shape[:2])
    face, face_lms = sharp_face(photo, aligned)
    assert face.shape == (700, 700, 3)  # the box's own side (under the 1024 cap)
    np.testing.assert_allclose(face_lms, lms * 700 / 256)
    small_box = CropBox(500.0, 600.0, 100.0)  # a small face: nothing to gain, the aligner's crop stays
    small = SimpleNamespace(image=small_box.extract(photo, 256), landmarks=lms, box=small_box,
                            full_shape=photo.shape[:2])
    kept, kept_lms = sharp_face(photo, small)
    assert kept is small.image and kept_lms is lms
    other = SimpleNamespace(image=aligned.image, landmarks=lms, box=box, full_shape=(10, 10))
    assert sharp_face(photo, other)[0] is aligned.image  # aligned on another (scaled) picture
