"""numpy frame <-> Qt image conversions (the frame contract meets QImage here only)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap

from avatarify_app.frames import as_frame


def frame_to_qimage(frame: np.ndarray) -> QImage:
    """Frame (uint8 HxWx3 RGB) -> QImage that owns a copy of the pixels."""
    f = as_frame(frame)
    h, w = f.shape[:2]
    # QImage wraps the buffer without copying; .copy() detaches it from the numpy array.
    return QImage(f.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def gray_to_qimage(values: np.ndarray) -> QImage:
    """2-D array in [0, 1] (or uint8) -> grayscale QImage copy."""
    a = np.asarray(values)
    if a.dtype != np.uint8:
        a = np.clip(np.rint(a.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    a = np.ascontiguousarray(a)
    h, w = a.shape[:2]
    return QImage(a.data, w, h, w, QImage.Format.Format_Grayscale8).copy()


def frame_to_pixmap(frame: np.ndarray, size: int | None = None) -> QPixmap:
    """Frame -> QPixmap, optionally scaled to fit a size x size square."""
    pix = QPixmap.fromImage(frame_to_qimage(frame))
    if size is not None:
        pix = pix.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                         Qt.TransformationMode.SmoothTransformation)
    return pix
