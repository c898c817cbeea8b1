"""The remote engine's wire format, shared by the client (``engines.remote``) and the server
(``avatarify_app.serve``). Plain bytes and JSON only: nothing pickled ever crosses the wire.

Images travel as JPEG (the default, with a quality) or PNG (lossless); landmarks as little-endian
float32 (N, 2) arrays. Over the WebSocket, control messages are JSON text frames and data
messages are binary frames laid out as

    b"AVF1" | uint32 big-endian header length | header (UTF-8 JSON) | part 0 | part 1 | ...

where the header's ``parts`` lists the byte length of each part. docs/REMOTE.md describes every
message; the checks here (sizes, dimensions, types) are what the server enforces on input.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from avatarify_app.errors import EngineError
from avatarify_app.frames import bgr_to_rgb, check_frame, rgb_to_bgr

PROTOCOL = 1
MAGIC = b"AVF1"
FORMATS = ("jpeg", "png")
DEFAULT_QUALITY = 90

# Limits the server enforces (the client stays well inside them).
MAX_AVATAR_BYTES = 20 * 1024 * 1024  # an uploaded avatar image (HTTP body)
MAX_MESSAGE_BYTES = 8 * 1024 * 1024  # one WebSocket message (a frame, a reference, an avatar)
MAX_JSON_BYTES = 64 * 1024  # a control message or a data message's header
MAX_WIRE_SIDE = 2048  # the longest image side accepted
MIN_SIDE = 16
MAX_LANDMARKS = 2048  # points per landmark array

# Endpoints (relative to the server URL).
HEALTH = "/v1/health"
INFO = "/v1/info"
AVATARS = "/v1/avatars"
FRAME = "/v1/frame"
STREAM = "/v1/stream"
# Ray Serve routes a request with this header to a replica that already holds that avatar.
ROUTE_HEADER = "serve_multiplexed_model_id"


class WireError(EngineError):
    """A message or image that does not follow the wire format (the server answers 4xx)."""

    status = 400
    code = "bad_request"


class TooLarge(WireError):
    status = 413
    code = "too_large"


class BadMedia(WireError):
    status = 422
    code = "bad_image"


# ----------------------------------------------------------------------------- images
def encode_image(frame: np.ndarray, fmt: str = "jpeg", quality: int = DEFAULT_QUALITY) -> bytes:
    """A frame as JPEG (``quality`` 1..100) or PNG bytes."""
    check_frame(frame)
    if fmt == "jpeg":
        ok, buf = cv2.imencode(".jpg", rgb_to_bgr(frame), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    elif fmt == "png":
        ok, buf = cv2.imencode(".png", rgb_to_bgr(frame), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    else:
        raise WireError(f"Unknown image format {fmt!r}.", f"Use one of: {', '.join(FORMATS)}.")
    if not ok:
        raise WireError(f"Could not encode a {frame.shape[1]}x{frame.shape[0]} frame as {fmt}.")
    return buf.tobytes()


def _png_size(data: bytes) -> tuple[int, int]:
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise BadMedia("The PNG image is truncated.")
    w, h = struct.unpack(">II", data[16:24])
    return w, h


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """Width and height from the first start-of-frame marker (no pixels decoded)."""
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            raise BadMedia("The JPEG image is corrupt (no marker where one belongs).")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > n:
                break
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        i += 2 + length
    raise BadMedia("The JPEG image is truncated (no frame header).")


def image_size(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) of JPEG or PNG bytes, read from the header without decoding."""
    head = bytes(data[:4])
    if head.startswith(b"\xff\xd8"):
        return ("jpeg", *_jpeg_size(bytes(data)))
    if head == b"\x89PNG":
        return ("png", *_png_size(bytes(data[:32])))
    raise BadMedia("Not a JPEG or PNG image.", "Send the image as JPEG or PNG bytes.")


def decode_image(data: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES, max_side: int = MAX_WIRE_SIDE,
                 square: bool = False) -> np.ndarray:
    """JPEG or PNG bytes -> frame, after checking size and dimensions from the header."""
    if len(data) == 0:
        raise BadMedia("The image is empty.")
    if len(data) > max_bytes:
        raise TooLarge(f"The image is {len(data)} bytes; at most {max_bytes} are accepted.")
    _fmt, w, h = image_size(data)
    if not (MIN_SIDE <= w <= max_side and MIN_SIDE <= h <= max_side):
        raise BadMedia(f"The image is {w}x{h}; each side must be {MIN_SIDE}..{max_side} pixels.")
    if square and w != h:
        raise BadMedia(f"The image is {w}x{h}; an aligned face crop is square.",
                       "Send the square crop the tracker made, not the camera frame.")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.shape[:2] != (h, w):
        raise BadMedia("The image cannot be decoded (corrupt or truncated).")
    return bgr_to_rgb(image)


# ----------------------------------------------------------------------------- landmarks
def landmarks_bytes(landmarks: np.ndarray | None) -> bytes:
    if landmarks is None:
        return b""
    return np.ascontiguousarray(landmarks, dtype="<f4").reshape(-1, 2).tobytes()


def landmarks_from_bytes(data: bytes, count: int | None, side: int) -> np.ndarray | None:
    """(count, 2) float32 landmarks (crop pixels) from their bytes; None when count is None."""
    if count is None:
        if len(data):
            raise WireError("Landmark bytes were sent without a landmark count.")
        return None
    if not isinstance(count, int) or not 0 < count <= MAX_LANDMARKS:
        raise WireError(f"The landmark count must be 1..{MAX_LANDMARKS}, not {count!r}.")
    if len(data) != count * 8:
        raise WireError(f"{count} landmarks take {count * 8} bytes, {len(data)} were sent.")
    points = np.frombuffer(data, dtype="<f4").reshape(count, 2).astype(np.float32)
    return _checked_points(points, side)


def landmarks_from_json(value: Any, side: int) -> np.ndarray | None:
    """[[x, y], ...] in crop pixels -> (N, 2) float32, or None."""
    if value is None:
        return None
    if not isinstance(value, list) or not 0 < len(value) <= MAX_LANDMARKS:
        raise WireError(f"landmarks must be a list of 1..{MAX_LANDMARKS} [x, y] pairs.")
    try:
        points = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise WireError(f"landmarks must be numbers: {err}") from err
    if points.ndim != 2 or points.shape[1] != 2:
        raise WireError("landmarks must be a list of [x, y] pairs.")
    return _checked_points(points, side)


def _checked_points(points: np.ndarray, side: int) -> np.ndarray:
    if not np.isfinite(points).all():
        raise WireError("landmarks must be finite numbers.")
    if np.abs(points).max(initial=0.0) > 4 * side:
        raise WireError("landmarks lie far outside the image; they are crop pixel coordinates.")
    return np.ascontiguousarray(points)


# ----------------------------------------------------------------------------- ids
def content_id(image: np.ndarray, landmarks: np.ndarray | None, kind: str = "avatar") -> str:
    """The id of an avatar (or reference): SHA-256 of its pixels and landmarks. The server
    recomputes it from what it decoded, so an id always names the same content."""
    frame = check_frame(image)
    h = hashlib.sha256(f"avatarify-{kind}-{PROTOCOL}:{frame.shape[0]}x{frame.shape[1]}:".encode())
    h.update(frame.tobytes())
    h.update(landmarks_bytes(landmarks))
    return h.hexdigest()


def check_id(value: Any, what: str = "avatar") -> str:
    if not isinstance(value, str) or len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise WireError(f"The {what} id must be 64 lowercase hex digits (a SHA-256).")
    return value


# ----------------------------------------------------------------------------- messages
def pack(header: dict[str, Any], *parts: bytes) -> bytes:
    """A binary message: magic, header length, JSON header (with the part lengths), parts."""
    head = json.dumps({**header, "parts": [len(p) for p in parts]}, separators=(",", ":")).encode()
    return b"".join((MAGIC, struct.pack(">I", len(head)), head, *parts))


def unpack(data: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> tuple[dict[str, Any], list[bytes]]:
    """The header and parts of a binary message, every length checked."""
    if len(data) > max_bytes:
        raise TooLarge(f"The message is {len(data)} bytes; at most {max_bytes} are accepted.")
    if len(data) < 8 or data[:4] != MAGIC:
        raise WireError("A binary message starts with AVF1 and a header length.")
    (n,) = struct.unpack(">I", data[4:8])
    if n > MAX_JSON_BYTES or 8 + n > len(data):
        raise WireError(f"The message header length {n} does not fit the message.")
    header = parse_json(data[8 : 8 + n])
    sizes = header.get("parts")
    if not isinstance(sizes, list) or not all(isinstance(s, int) and s >= 0 for s in sizes):
        raise WireError("The message header needs 'parts': a list of byte lengths.")
    if 8 + n + sum(sizes) != len(data):
        raise WireError("The message parts do not add up to its length.")
    parts, at = [], 8 + n
    for size in sizes:
        parts.append(data[at : at + size])
        at += size
    return header, parts


def parse_json(data: bytes | str, max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """A JSON object, size-checked; WireError for anything else."""
    if len(data) > max_bytes:
        raise TooLarge(f"The JSON is {len(data)} bytes; at most {max_bytes} are accepted.")
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, ValueError) as err:
        raise WireError(f"Not valid JSON: {err}") from err
    if not isinstance(value, dict):
        raise WireError("Expected a JSON object.")
    return value


def b64decode(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise WireError(f"{what} must be a base64 string.")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as err:
        raise WireError(f"{what} is not valid base64: {err}") from err


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class Motion:
    """The motion options a client session sends (``MotionOptions`` on the wire)."""

    relative: bool = True
    adapt_scale: bool = True

    @classmethod
    def from_json(cls, message: dict[str, Any]) -> Motion:
        values = {}
        for key in ("relative", "adapt_scale"):
            if key in message:
                if not isinstance(message[key], bool):
                    raise WireError(f"{key} must be true or false.")
                values[key] = message[key]
        return cls(**values)


def check_format(fmt: Any, quality: Any) -> tuple[str, int]:
    fmt = "jpeg" if fmt is None else fmt
    if fmt not in FORMATS:
        raise WireError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}.")
    quality = DEFAULT_QUALITY if quality is None else quality
    if not isinstance(quality, int) or isinstance(quality, bool) or not 1 <= quality <= 100:
        raise WireError(f"quality must be an integer 1..100, not {quality!r}.")
    return fmt, quality
