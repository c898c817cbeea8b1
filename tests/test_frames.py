import logging
import struct
import zlib

import cv2
import numpy as np
import pytest

from avatarify_app.errors import BadImageError
from avatarify_app.frames import (
    MAX_SIDE,
    NEUTRAL_BACKGROUND,
    as_frame,
    check_frame,
    fit_into,
    load_image,
    read_image,
    save_image,
)


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


# --- reading portraits: EXIF orientation, size limits, transparency (issue 11, items 3 and 17) ---------

def _marked(w: int, h: int) -> np.ndarray:
    """A grey w x h frame with a red block at its top-left corner and a blue one at its bottom-left."""
    frame = np.full((h, w, 3), 90, np.uint8)
    frame[: h // 4, : w // 4] = (230, 20, 20)
    frame[-h // 4 :, : w // 4] = (20, 20, 230)
    return frame


def _exif_jpeg(path, frame: np.ndarray, orientation: int):
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(frame).save(path, quality=95, exif=exif)
    return path


def test_exif_orientation_6_comes_out_upright(tmp_path):
    # How phones store a portrait: landscape pixels plus "rotate 90 degrees clockwise to view".
    stored = _marked(160, 96)
    path = _exif_jpeg(tmp_path / "phone.jpg", stored, 6)
    frame = load_image(path)
    assert frame.shape == (160, 96, 3)  # upright: taller than wide
    # Turned clockwise, the stored top-left (red) is at the top-right, the bottom-left (blue) at the top-left.
    assert frame[5, -5, 0] > 200 and frame[5, -5, 2] < 60
    assert frame[5, 5, 2] > 200 and frame[5, 5, 0] < 60
    # OpenCV's own EXIF-aware reader (IMREAD_COLOR) agrees pixel for pixel (up to JPEG rounding).
    oracle = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert np.abs(oracle.astype(int) - frame.astype(int)).mean() < 2.0
    assert read_image(path).original_size == (96, 160)


@pytest.mark.parametrize("orientation", [1, 3, 8])
def test_other_exif_orientations(tmp_path, orientation):
    path = _exif_jpeg(tmp_path / f"o{orientation}.jpg", _marked(160, 96), orientation)
    oracle = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    frame = load_image(path)
    assert frame.shape == oracle.shape
    assert np.abs(oracle.astype(int) - frame.astype(int)).mean() < 2.0


@pytest.mark.parametrize(("suffix", "size"), [(".jpg", (6000, 4500)), (".png", (4400, 900))])
def test_large_portrait_is_scaled_down_once_with_a_note(tmp_path, caplog, suffix, size):
    w, h = size
    big = np.zeros((h, w, 3), np.uint8)
    big[:, : w // 2] = (200, 120, 60)  # left half orange, right half black
    path = tmp_path / f"big{suffix}"
    save_image(path, big)
    with caplog.at_level(logging.WARNING, logger="avatarify_app.frames"):
        loaded = read_image(path)
    frame = loaded.frame
    assert max(frame.shape[:2]) == MAX_SIDE
    assert frame.shape[1] / frame.shape[0] == pytest.approx(w / h, rel=0.01)
    assert frame.flags.c_contiguous and frame.flags.writeable
    assert np.abs(frame[frame.shape[0] // 2, 10].astype(int) - (200, 120, 60)).max() <= 3
    assert frame[frame.shape[0] // 2, -10].max() <= 3
    assert loaded.original_size == (w, h)
    assert len(loaded.notes) == 1 and f"{w}x{h}" in loaded.notes[0] and str(MAX_SIDE) in loaded.notes[0]
    assert loaded.notes[0] in caplog.text  # logged as well
    # Within the limit nothing changes and nothing is said.
    small = tmp_path / f"ok{suffix}"
    save_image(small, np.ascontiguousarray(big[:400, :500]))
    assert read_image(small).notes == () and read_image(small).frame.shape == (400, 500, 3)


def _png_header_only(path, w: int, h: int):
    """A PNG that declares w x h RGB pixels but holds only a few bytes of data (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def _jpeg_claiming(path, w: int, h: int):
    """A real small JPEG whose frame header (SOF0) is patched to claim w x h pixels."""
    save_image(path, np.full((64, 64, 3), 100, np.uint8))
    data = bytearray(path.read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", h, w)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("make", [
    lambda d: _png_header_only(d / "bomb.png", 60000, 60000),   # 3.6 gigapixels: Pillow's own guard
    lambda d: _png_header_only(d / "scan.png", 13000, 13000),   # 169 MP: above our MAX_PIXELS
    lambda d: _jpeg_claiming(d / "huge.jpg", 13000, 13000),
])
def test_absurd_sizes_are_refused_from_the_header(tmp_path, monkeypatch, make):
    from PIL import ImageFile

    path = make(tmp_path)
    decoded = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self))
    with pytest.raises(BadImageError, match=r"megapixels|too many pixels") as info:
        load_image(path)
    assert not decoded  # refused before any pixel was decoded
    assert "150 megapixels" in str(info.value)  # the message says the limit and what to do


def test_transparent_png_is_flattened_on_neutral_grey(tmp_path, caplog):
    rgba = np.zeros((100, 120, 4), np.uint8)
    rgba[:, :, :3] = (0, 255, 0)  # the colour hidden under alpha 0: must not show
    rgba[:, 60:, :3] = (200, 30, 30)
    rgba[:, 60:, 3] = 255
    rgba[:, 40:60, 3] = 128  # a half-transparent band of the hidden green
    path = tmp_path / "cutout.png"
    cv2.imwrite(str(path), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    with caplog.at_level(logging.WARNING, logger="avatarify_app.frames"):
        loaded = read_image(path)
    f = loaded.frame
    assert tuple(f[50, 10]) == NEUTRAL_BACKGROUND
    assert tuple(f[50, 100]) == (200, 30, 30)
    assert abs(int(f[50, 50, 1]) - (255 * 128 + 128 * 127) // 255) <= 1 and abs(int(f[50, 50, 0]) - 64) <= 1
    assert len(loaded.notes) == 1 and "transparent" in loaded.notes[0] and "transparent" in caplog.text
    # An alpha channel that hides nothing is dropped without a note.
    rgba[:, :, 3] = 255
    cv2.imwrite(str(path), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    assert read_image(path).notes == ()


def test_sixteen_bit_and_gray_files(tmp_path, rng):
    deep = rng.integers(0, 65536, (70, 90, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), deep)  # written as BGR
    np.testing.assert_array_equal(load_image(tmp_path / "deep.png"), (deep >> 8).astype(np.uint8)[:, :, ::-1])
    cv2.imwrite(str(tmp_path / "deep_gray.png"), deep[:, :, 0])
    gray = load_image(tmp_path / "deep_gray.png")
    assert gray.shape == (70, 90, 3)
    np.testing.assert_array_equal(gray[:, :, 1], (deep[:, :, 0] >> 8).astype(np.uint8))


def test_too_narrow_once_scaled(tmp_path):
    save_image(tmp_path / "strip.png", np.full((70, 9000, 3), 50, np.uint8))
    with pytest.raises(BadImageError, match="too narrow"):
        load_image(tmp_path / "strip.png")
