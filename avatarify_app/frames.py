"""The frame contract and the conversions around it.

A *frame* everywhere in the program is a ``numpy.ndarray`` of dtype uint8, shape
HxWx3, RGB channel order, C-contiguous. BGR exists only at the OpenCV boundary
(reading and writing files, cameras), converted here.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from avatarify_app.errors import BadImageError

log = logging.getLogger(__name__)

MIN_IMAGE_SIDE = 64
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
MAX_SIDE = 4096
"""A portrait larger than this on its long side is scaled down once, on load (the engines look
at a 256-512 px face crop; more pixels only cost memory and time)."""
MAX_PIXELS = 150_000_000
"""Pictures with more pixels are refused from their header, before decoding (decompression bombs,
absurd scans). 150 MP keeps every common camera's photos (up to ~108 MP) and a 12000x12000 scan."""
NEUTRAL_BACKGROUND = (128, 128, 128)
"""What transparent pixels of a portrait become."""
_EXIF_ORIENTATION = 0x0112
_TOO_BIG_HINT = "Use a photo of at most 150 megapixels (a copy saved at a smaller size works)."


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


@dataclass(frozen=True, eq=False)
class LoadedImage:
    """An image file read into a frame, with what the user should know about how it was read.

    frame:         the frame (upright as its EXIF orientation says, alpha flattened, at most
                   ``MAX_SIDE`` px on its long side).
    notes:         user-facing sentences (scaled down, transparency flattened); also logged.
    original_size: (width, height) of the picture as stored in the file, upright.
    """

    frame: np.ndarray
    notes: tuple[str, ...] = ()
    original_size: tuple[int, int] = (0, 0)


# EXIF orientation (tag 0x0112) -> the transpose that turns the stored pixels upright (EXIF 2.3, 4.6.4).
_EXIF_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def _scaled_size(w: int, h: int, max_side: int = MAX_SIDE) -> tuple[int, int]:
    """(w, h) scaled so that the long side is at most ``max_side`` (unchanged when it is)."""
    if max(w, h) <= max_side:
        return w, h
    s = max_side / max(w, h)
    return max(1, round(w * s)), max(1, round(h * s))


def _size_note(name: str, w: int, h: int, nw: int, nh: int) -> str:
    return (f"{name} is {w}x{h} px; it was scaled down to {nw}x{nh} "
            f"(portraits are limited to {MAX_SIDE} px on the long side).")


def _open_header(p: Path) -> Image.Image:
    """Pillow's lazy image: header read, pixels not decoded yet."""
    try:
        with warnings.catch_warnings():
            # Pillow warns above ~89 MP; our own limit (MAX_PIXELS) is checked right after.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(p)
    except Image.DecompressionBombError as err:
        raise BadImageError(f"{p.name} declares too many pixels to be a photo ({err}).",
                            _TOO_BIG_HINT) from err
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        log.debug("Pillow cannot open %s: %s", p, err)
        raise BadImageError(f"Cannot decode {p.name} as an image (corrupt file or unsupported format).") from err


def _to_rgb_or_rgba(img: Image.Image, name: str) -> Image.Image:
    """8-bit "RGB" or (when it has transparency) "RGBA" from any mode Pillow decodes."""
    if img.mode in ("RGB", "RGBA"):
        return img
    if img.mode in _ALPHA_MODES or (img.mode in ("P", "L", "RGB") and "transparency" in img.info):
        return img.convert("RGBA")
    if img.mode.startswith("I"):  # 16/32-bit integer gray: keep the high byte of 16 bits
        gray = np.asarray(img)
        gray = np.clip(gray.astype(np.int64) >> 8, 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if img.mode == "F":
        raise BadImageError(f"{name} has unsupported pixel type (32-bit float).")
    return img.convert("RGB")


def flatten_alpha(rgba: np.ndarray, background: tuple[int, int, int] = NEUTRAL_BACKGROUND) -> tuple[np.ndarray, bool]:
    """An HxWx4 uint8 RGBA array composited over ``background``: (frame, whether any pixel was
    see-through). Colours hidden under alpha 0 never show."""
    alpha = rgba[:, :, 3]
    if alpha.min() == 255:
        return np.ascontiguousarray(rgba[:, :, :3]), False
    a = alpha[:, :, None].astype(np.uint16)
    bg = np.asarray(background, np.uint16)
    out = (rgba[:, :, :3].astype(np.uint16) * a + bg * (255 - a) + 127) // 255
    return np.ascontiguousarray(out.astype(np.uint8)), True


def _transparency_note(name: str) -> str:
    r, g, b = NEUTRAL_BACKGROUND
    return f"{name} is partly transparent; it was placed on a neutral grey background (RGB {r},{g},{b})."


def read_image(path: str | Path) -> LoadedImage:
    """Read an image file into a frame, or raise ``BadImageError`` saying why.

    The header is read first (Pillow): more than ``MAX_PIXELS`` pixels (absurd sizes,
    decompression bombs) is refused before any pixel is decoded. A picture larger than
    ``MAX_SIDE`` px on its long side is scaled down once here (JPEGs are decoded at a
    reduced scale directly); the EXIF orientation is applied (phones store portraits
    turned); transparency is composited over a neutral grey. ``notes`` says what changed.
    """
    p = Path(path)
    if not p.exists():
        raise BadImageError(f"Image not found: {p}", "Check the path and try again.")
    if not p.is_file():
        raise BadImageError(f"Not a file: {p}")
    if p.stat().st_size == 0:
        raise BadImageError(f"{p.name} is an empty file.")
    notes: list[str] = []
    with _open_header(p) as img:
        w, h = img.size
        if w * h > MAX_PIXELS:
            raise BadImageError(
                f"{p.name} is {w}x{h} px ({w * h / 1e6:.0f} megapixels); pictures above "
                f"{MAX_PIXELS / 1e6:.0f} megapixels are refused (a decompression bomb or a scan far "
                "larger than a portrait needs).", _TOO_BIG_HINT)
        if min(w, h) < MIN_IMAGE_SIDE:
            raise BadImageError(f"{p.name} is too small ({w}x{h}).")
        try:
            orientation = int(img.getexif().get(_EXIF_ORIENTATION, 1) or 1)
        except (ValueError, TypeError, OSError, SyntaxError):  # a broken EXIF block: the pixels still count
            orientation = 1
        nw, nh = _scaled_size(w, h)
        try:
            if (nw, nh) != (w, h):
                img.draft(None, (nw, nh))  # JPEG: decode at 1/2, 1/4 or 1/8 scale, still >= (nw, nh)
            img.load()
            out = _to_rgb_or_rgba(img, p.name)
            if (nw, nh) != (w, h):
                # Pillow resamples RGBA premultiplied, so hidden colours do not bleed into edges.
                out = out.resize((nw, nh), Image.Resampling.LANCZOS, reducing_gap=3.0)
                notes.append(_size_note(p.name, *(_upright(w, h, orientation)), *_upright(nw, nh, orientation)))
            if orientation in _EXIF_TRANSPOSE:
                out = out.transpose(_EXIF_TRANSPOSE[orientation])
                log.info("%s: applied EXIF orientation %d", p.name, orientation)
            array = np.asarray(out)
            if not array.flags.writeable:  # Pillow hands out read-only buffers; frames are ordinary arrays
                array = array.copy()
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
            log.debug("decoding %s failed: %s", p, err)
            raise BadImageError(f"Cannot decode {p.name} as an image (corrupt file or unsupported format).") from err
    if array.ndim == 3 and array.shape[2] == 4:
        frame, transparent = flatten_alpha(array)
        if transparent:
            notes.append(_transparency_note(p.name))
    else:
        frame = np.ascontiguousarray(array)
    if min(frame.shape[:2]) < MIN_IMAGE_SIDE:
        uw, uh = _upright(w, h, orientation)
        raise BadImageError(f"{p.name} is too narrow ({uw}x{uh}): scaled to {MAX_SIDE} px on its long side "
                            f"it is {frame.shape[1]}x{frame.shape[0]}.", "Crop the photo closer to the face.")
    for note in notes:
        log.warning("%s", note)
    return LoadedImage(check_frame(frame), tuple(notes), _upright(w, h, orientation))


def _upright(w: int, h: int, orientation: int) -> tuple[int, int]:
    """(w, h) of stored pixels after the EXIF orientation's transpose (5-8 swap the sides)."""
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file into a frame (see ``read_image``; its notes are logged)."""
    return read_image(path).frame


def limit_size(frame: np.ndarray, name: str = "The picture") -> tuple[np.ndarray, str | None]:
    """A frame scaled down to ``MAX_SIDE`` px on its long side, with the note saying so (or None)."""
    h, w = frame.shape[:2]
    nw, nh = _scaled_size(w, h)
    if (nw, nh) == (w, h):
        return frame, None
    note = _size_note(name, w, h, nw, nh)
    log.warning("%s", note)
    return resize(frame, (nw, nh)), note


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
