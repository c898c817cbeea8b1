import numpy as np
import pytest

from avatarify_app.errors import BadImageError
from avatarify_app.frames import as_frame, check_frame, fit_into, load_image, save_image


def test_roundtrip_png(tmp_path, rng):
    frame = rng.integers(0, 256, (80, 120, 3), dtype=np.uint8)
    save_image(tmp_path / "a.png", frame)
    back = load_image(tmp_path / "a.png")
    assert back.shape == frame.shape and back.flags.c_contiguous
    np.testing.assert_array_equal(back, frame)  # RGB order survives the BGR boundary


def test_bad_images_say_what_to_do(tmp_path):
    with pytest.raises(BadImageError, match="not found"):
        load_image(tmp_path / "missing.png")
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"this is not a jpeg")
    with pytest.raises(BadImageError, match="Cannot decode") as info:
        load_image(junk)
    assert "JPEG or PNG" in str(info.value)
    save_image(tmp_path / "tiny.png", np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(BadImageError, match="too small"):
        load_image(tmp_path / "tiny.png")


def test_contract_checks():
    with pytest.raises(ValueError, match="uint8"):
        check_frame(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="HxWx3"):
        check_frame(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="contiguous"):
        check_frame(np.zeros((4, 8, 3), np.uint8)[:, ::2])
    assert as_frame(np.ones((4, 4), np.float32)).max() == 255
    assert as_frame(np.zeros((4, 4, 4), np.uint8)).shape == (4, 4, 3)


@pytest.mark.parametrize("mode", ["letterbox", "fill"])
def test_fit_into(mode):
    frame = np.full((256, 256, 3), 200, np.uint8)
    out = fit_into(frame, (640, 480), mode)
    assert out.shape == (480, 640, 3)
    if mode == "letterbox":
        assert out[:, :50].max() == 0 and out[240, 320, 0] == 200
    else:
        assert out.min() == 200
