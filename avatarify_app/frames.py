"""The frame contract and the conversions around it.

A *frame* everywhere in the program is a ``numpy.ndarray`` of dtype uint8, shape
HxWx3, RGB channel order, C-contiguous. BGR exists only at the OpenCV boundary
(reading and writing files, cameras), converted here.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from avatarify_app.errors import BadImageError

MIN_IMAGE_SIDE = 64
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def check_frame(frame: object, name: str = "frame") -> np.ndarray:
    """Return ``frame`` if it honours the frame contract, else raise ``ValueError``."""
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8, got {frame.dtype}")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"{name} must be HxWx3, got shape {frame.shape}")
    if not frame.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    return frame


def as_frame(array: np.ndarray) -> np.ndarray:
    """Coerce a grayscale/RGBA/float-in-[0,1] image to the frame contract."""
    a = np.asarray(array)
    if a.dtype != np.uint8:
        if np.issubdtype(a.dtype, np.floating):
            a = np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)
        else:
            a = np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    elif a.ndim == 3 and a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    elif a.ndim == 3 and a.shape[2] == 4:
        a = a[:, :, :3]
    return check_frame(np.ascontiguousarray(a))


def bgr_to_rgb(image: np.ndarray) -> np.ndarray:
    """OpenCV BGR(A)/gray image -> frame."""
    if image.ndim == 2:
        return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_GRAY2RGB))
    if image.shape[2] == 4:
        return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGRA2RGB))
    return np.ascontiguousarray(image[:, :, ::-1])


def rgb_to_bgr(frame: np.ndarray) -> np.ndarray:
    """Frame -> OpenCV BGR image."""
    return np.ascontiguousarray(frame[:, :, ::-1])


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file into a frame, or raise ``BadImageError`` saying why."""
    p = Path(path)
    if not p.exists():
        raise BadImageError(f"Image not found: {p}", "Check the path and try again.")
    if not p.is_file():
        raise BadImageError(f"Not a file: {p}")
    data = np.fromfile(str(p), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise BadImageError(f"Cannot decode {p.name} as an image (corrupt file or unsupported format).")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.dtype != np.uint8:
        raise BadImageError(f"{p.name} has unsupported pixel type {image.dtype}.")
    if min(image.shape[:2]) < MIN_IMAGE_SIDE:
        raise BadImageError(f"{p.name} is too small ({image.shape[1]}x{image.shape[0]}).")
    return bgr_to_rgb(image)


def save_image(path: str | Path, frame: np.ndarray) -> None:
    """Write a frame to an image file (format from the suffix)."""
    check_frame(frame)
    p = Path(path)
    ok, buf = cv2.imencode(p.suffix or ".png", rgb_to_bgr(frame))
    if not ok:
        raise BadImageError(f"Cannot encode an image as {p.suffix!r}", "Use .png or .jpg.")
    p.parent.mkdir(parents=True, exist_ok=True)
    buf.tofile(str(p))


def resize(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a frame to (width, height) with area filtering when shrinking."""
    w, h = size
    if frame.shape[1] == w and frame.shape[0] == h:
        return frame
    shrink = w < frame.shape[1] or h < frame.shape[0]
    out = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return np.ascontiguousarray(out)


def fit_into(frame: np.ndarray, size: tuple[int, int], mode: str = "letterbox") -> np.ndarray:
    """Place a frame into a (width, height) canvas: ``letterbox`` (black bars) or ``fill`` (crop)."""
    w, h = size
    fh, fw = frame.shape[:2]
    if mode == "fill":
        scale = max(w / fw, h / fh)
    elif mode == "letterbox":
        scale = min(w / fw, h / fh)
    else:
        raise ValueError(f"unknown fit mode {mode!r}; use 'letterbox' or 'fill'")
    nw, nh = max(1, round(fw * scale)), max(1, round(fh * scale))
    scaled = resize(frame, (nw, nh))
    canvas = np.zeros((h, w, 3), np.uint8)
    # Centre; negative offsets crop (fill), positive ones pad (letterbox).
    x0, y0 = (w - nw) // 2, (h - nh) // 2
    sx0, sy0 = max(0, -x0), max(0, -y0)
    dx0, dy0 = max(0, x0), max(0, y0)
    cw, ch = min(w - dx0, nw - sx0), min(h - dy0, nh - sy0)
    canvas[dy0 : dy0 + ch, dx0 : dx0 + cw] = scaled[sy0 : sy0 + ch, sx0 : sx0 + cw]
    return canvas
