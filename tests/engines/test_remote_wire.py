"""The remote engine's wire format: messages, images, landmarks and ids, and what is refused."""

from __future__ import annotations

import json
import struct

import cv2
import numpy as np
import pytest

from avatarify_app.engines.remote import wire


def test_messages_round_trip_and_lengths_are_checked(rng):
    parts = [rng.integers(0, 255, 1000, dtype=np.uint8).tobytes(), b"", b"xyz"]
    header, got = wire.unpack(wire.pack({"kind": "frame", "seq": 3}, *parts))
    assert header["kind"] == "frame" and header["seq"] == 3 and header["parts"] == [1000, 0, 3]
    assert got == parts
    good = wire.pack({"kind": "frame"}, b"abc")
    bad = [
        b"XXXX" + good[4:],  # magic
        good[:-1],  # a part is short
        good + b"!",  # a byte too many
        good[:4] + struct.pack(">I", 10**6) + good[8:],  # header length past the end
        wire.MAGIC + struct.pack(">I", 2) + b"[]",  # header not an object
        wire.MAGIC + struct.pack(">I", 13) + b'{"parts":[-1]}'[:13],  # bad JSON
        wire.MAGIC + struct.pack(">I", 14) + b'{"parts":[-1]}',  # negative length
    ]
    for data in bad:
        with pytest.raises(wire.WireError):
            wire.unpack(data)
    with pytest.raises(wire.TooLarge):
        wire.unpack(b"\0" * (wire.MAX_MESSAGE_BYTES + 1))


def test_image_size_is_read_from_the_header_for_jpeg_and_png(rng):
    frame = rng.integers(0, 255, (48, 80, 3), dtype=np.uint8)
    for fmt in wire.FORMATS:
        data = wire.encode_image(frame, fmt, 75)
        assert wire.image_size(data) == (fmt, 80, 48)
        back = wire.decode_image(data)
        assert back.shape == frame.shape and back.dtype == np.uint8 and back.flags.c_contiguous
    assert np.array_equal(wire.decode_image(wire.encode_image(frame, "png")), frame)  # lossless
    # A JPEG with large APP segments (80 kB of metadata) before its frame header is measured right.
    jpeg = cv2.imencode(".jpg", frame)[1].tobytes()
    app = b"\xff\xe1" + struct.pack(">H", 40002) + b"\0" * 40000
    padded = jpeg[:2] + app + app + jpeg[2:]
    assert wire.image_size(padded) == ("jpeg", 80, 48)


def test_bad_images_are_refused_before_decoding():
    with pytest.raises(wire.BadMedia, match="Not a JPEG or PNG"):
        wire.decode_image(b"GIF89a....")
    with pytest.raises(wire.BadMedia, match="empty"):
        wire.decode_image(b"")
    # A PNG header that claims 100000x100000 pixels: refused from the header, nothing decoded.
    huge = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II", 100000, 100000) + b"\x08\x02\0\0\0"
    with pytest.raises(wire.BadMedia, match="each side must be"):
        wire.decode_image(huge)
    small = wire.encode_image(np.zeros((64, 32, 3), np.uint8), "png")
    with pytest.raises(wire.BadMedia, match="square"):
        wire.decode_image(small, square=True)
    with pytest.raises(wire.BadMedia, match="cannot be decoded"):
        wire.decode_image(small[:60])  # header intact, pixels cut off
    with pytest.raises(wire.TooLarge):
        wire.decode_image(small, max_bytes=10)


def test_landmarks_travel_as_float32_and_are_checked():
    points = np.array([[1.5, 2.25], [255.0, 0.0]], np.float32)
    data = wire.landmarks_bytes(points)
    assert len(data) == 16
    assert np.array_equal(wire.landmarks_from_bytes(data, 2, 256), points)
    assert wire.landmarks_from_bytes(b"", None, 256) is None
    assert np.array_equal(wire.landmarks_from_json(points.tolist(), 256), points)
    for args in ((data, 3), (data[:8], 2), (data, None), (data, 0), (data, "2")):
        with pytest.raises(wire.WireError):
            wire.landmarks_from_bytes(args[0], args[1], 256)
    for value in ([[1, 2, 3]], "x", [[float("nan"), 1]], [[1e9, 0]], [["a", "b"]], []):
        with pytest.raises(wire.WireError):
            wire.landmarks_from_json(value, 256)


def test_content_ids_name_pixels_and_landmarks():
    image = np.zeros((32, 32, 3), np.uint8)
    lms = np.ones((5, 2), np.float32)
    a = wire.content_id(image, lms)
    assert a == wire.content_id(image.copy(), lms.copy()) and len(a) == 64 and wire.check_id(a) == a
    other = image.copy()
    other[0, 0, 0] = 1
    assert len({a, wire.content_id(other, lms), wire.content_id(image, None), wire.content_id(image, lms + 1),
                wire.content_id(image, lms, kind="reference")}) == 5
    for bad in ("../x", "AB" * 32, "a" * 63, 5, None):
        with pytest.raises(wire.WireError):
            wire.check_id(bad)


def test_json_and_options_are_checked():
    assert wire.parse_json(json.dumps({"a": 1})) == {"a": 1}
    for data in ("[1]", "{", b"\xff", "x" * (wire.MAX_JSON_BYTES + 1)):
        with pytest.raises(wire.WireError):
            wire.parse_json(data)
    assert wire.check_format(None, None) == ("jpeg", wire.DEFAULT_QUALITY)
    assert wire.check_format("png", 50) == ("png", 50)
    for fmt, quality in (("gif", 90), ("jpeg", 0), ("jpeg", 101), ("jpeg", True), ("jpeg", 9.5)):
        with pytest.raises(wire.WireError):
            wire.check_format(fmt, quality)
    assert wire.Motion.from_json({"relative": False}) == wire.Motion(relative=False, adapt_scale=True)
    with pytest.raises(wire.WireError):
        wire.Motion.from_json({"relative": "yes"})
    assert wire.b64decode(wire.b64encode(b"\0\1"), "x") == b"\0\1"
    with pytest.raises(wire.WireError):
        wire.b64decode("@@@", "image")
