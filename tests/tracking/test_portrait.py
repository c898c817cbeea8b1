"""align_portrait / PortraitAligner with real mediapipe on real photos."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from avatarify_app.config import CropConfig, TrackingConfig
from avatarify_app.errors import BadImageError, ConfigError, NoFaceError
from avatarify_app.frames import save_image
from avatarify_app.paths import AVATARS_DIR
from avatarify_app.tracking import AlignedFace, align_portrait, face_size
from avatarify_app.tracking.crop import CENTRE_DROP, FACE_FRACTION

from .conftest import apply, place


@pytest.fixture(scope="module")
def reference(aligner, astronaut):
    """Mesh of the shipped portrait, found in the portrait as it is."""
    return aligner.find_face(astronaut).landmarks


def _check_framing(a: AlignedFace, size: int = 256, fitted: bool = False) -> None:
    assert a.image.shape == (size, size, 3) and a.image.dtype == np.uint8 and a.image.flags.c_contiguous
    assert a.landmarks.shape == (468, 2) and a.landmarks.dtype == np.float32
    lm = a.landmarks
    centre = (lm[10] + lm[152]) / 2
    if fitted:
        # A close-up photo: the box was pulled inside the picture (CropBox.fitted_inside), so the
        # face may be up to 1/0.8 bigger and up to 12% of the side off the VoxCeleb position.
        assert FACE_FRACTION * size * 0.98 <= face_size(lm) <= FACE_FRACTION * size / 0.8 * 1.02
        assert abs(centre[0] - size / 2) <= 0.14 * size
        assert abs(centre[1] - size * (0.5 - CENTRE_DROP)) <= 0.14 * size
        return
    # The face box is ~42% of the side, the face centre a little above the crop centre.
    assert face_size(lm) == pytest.approx(FACE_FRACTION * size, rel=0.02)
    assert centre[0] == pytest.approx(size / 2, abs=0.02 * size)
    assert centre[1] == pytest.approx(size * (0.5 - CENTRE_DROP), abs=0.02 * size)


def test_shipped_avatar_is_framed_by_our_cropper(aligner, astronaut):
    a = aligner.align(astronaut)
    _check_framing(a)
    assert a.full_shape == (256, 256)
    # The shipped file is already framed: re-framing it is (nearly) the identity.
    assert a.box.side == pytest.approx(256, rel=0.05)
    assert abs(a.box.cx - 128) < 8 and abs(a.box.cy - 128) < 8
    assert (AVATARS_DIR / "astronaut.json").is_file()


def test_align_portrait_function_and_path(tmp_path, astronaut):
    path = tmp_path / "me.png"
    save_image(path, astronaut)
    a = align_portrait(path, TrackingConfig(crop=CropConfig(size=128)))
    _check_framing(a, 128)
    assert a.face is not None and 0.5 < a.face.score <= 1


def _mean_error(found: np.ndarray, expected: np.ndarray) -> float:
    return float(np.mean(np.linalg.norm(found - expected, axis=1)) / face_size(expected))


def test_small_face_in_big_canvas(aligner, astronaut, reference):
    # The face is ~45 px tall in a 2400x1600 picture: only full-range detection or tiles find it.
    canvas, m = place(astronaut, (1600, 2400), x=1700, y=1100, scale=0.4)
    a = aligner.align(canvas)
    _check_framing(a)
    assert _mean_error(a.box.to_image(a.landmarks), apply(m, reference)) < 0.06


@pytest.mark.parametrize("angle", [25, -30])
def test_rotated_face(aligner, astronaut, reference, angle):
    canvas, m = place(astronaut, (512, 512), x=128, y=128, angle_deg=angle)
    face = aligner.find_face(canvas)
    assert _mean_error(face.landmarks, apply(m, reference)) < 0.06
    _check_framing(aligner.align(canvas))


def test_half_out_of_frame(aligner, astronaut, reference):
    # Only the right ~60% of the face is in the picture: the mesh extends past the left edge.
    big = cv2.resize(astronaut, (512, 512))
    x_face_centre = 2 * 128
    canvas = np.ascontiguousarray(big[:, x_face_centre - 40 :])
    face = aligner.find_face(canvas)
    expected = reference * 2 - (x_face_centre - 40, 0)
    assert face.landmarks[:, 0].min() < 0
    assert _mean_error(face.landmarks, expected) < 0.1
    a = aligner.align(canvas)
    assert a.box.x0 < 0  # the crop extends past the picture (border replicated)
    assert a.image.shape == (256, 256, 3)


def test_no_face_raises(aligner, rng):
    with pytest.raises(NoFaceError) as err:
        aligner.align(np.full((480, 640, 3), 127, np.uint8))
    assert "No face" in str(err.value) and err.value.hint
    with pytest.raises(NoFaceError):
        aligner.align(rng.integers(0, 255, (700, 900, 3), dtype=np.uint8))


def test_bad_images(aligner, tmp_path):
    with pytest.raises(BadImageError):
        aligner.align(np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(BadImageError):
        aligner.align(np.zeros((100, 100, 5), np.uint8))
    with pytest.raises(BadImageError):
        aligner.align("not an image")  # type: ignore[arg-type]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(BadImageError):
        align_portrait(bad)


def test_gray_and_rgba_accepted(aligner, astronaut):
    gray = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    _check_framing(aligner.align(gray))
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    _check_framing(aligner.align(rgba))


def test_nudges_apply(aligner, astronaut):
    plain = aligner.align(astronaut)
    nudged = aligner.align(astronaut, CropConfig(zoom=1.25, offset_x=0.1))
    assert nudged.box.side == pytest.approx(plain.box.side / 1.25)
    assert nudged.box.cx == pytest.approx(plain.box.cx + 0.1 * nudged.box.side)


def test_unknown_backend():
    with pytest.raises(ConfigError):
        align_portrait(np.zeros((100, 100, 3), np.uint8), TrackingConfig(backend="dlib"))


def test_face_alignment_without_weights_falls_back(monkeypatch, tmp_path, astronaut, caplog):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with caplog.at_level(logging.WARNING, logger="avatarify_app.tracking"):
        a = align_portrait(astronaut, TrackingConfig(backend="face_alignment"))
    _check_framing(a)
    assert a.face is not None and a.face.landmarks68 is None
    text = caplog.text
    assert "2DFAN4-11f355bf06.pth.tar" in text and str(tmp_path / "torch") in text
    assert not any((tmp_path / "torch").rglob("*.pth*"))  # nothing was downloaded


@pytest.mark.parametrize("name", ["einstein.jpg", "mona.jpg"])
def test_shared_photos(media_dir, aligner, name):
    a = aligner.align(media_dir / name)
    _check_framing(a, fitted=True)
    # Both are close-ups. The Mona Lisa's box overflows a little and now stays inside the
    # picture (no repeated-border streaks); Einstein's is too big to fit even at 80%.
    if name == "einstein.jpg":
        return
    h, w = a.full_shape
    assert a.box.x0 >= -0.5 and a.box.y0 >= -0.5
    assert a.box.x0 + a.box.side <= w + 0.5 and a.box.y0 + a.box.side <= h + 0.5
