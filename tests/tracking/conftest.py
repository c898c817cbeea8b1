"""Fixtures for the tracking tests: the shipped portrait, scenes built from it, video files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from avatarify_app.frames import bgr_to_rgb, load_image
from avatarify_app.paths import AVATARS_DIR
from avatarify_app.tracking import PortraitAligner


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """The shipped 256x256 default avatar (a real photo, public domain)."""
    return load_image(AVATARS_DIR / "astronaut.png")


@pytest.fixture(scope="module")
def aligner() -> Iterator[PortraitAligner]:
    with PortraitAligner() as a:
        yield a


def place(face: np.ndarray, canvas_hw: tuple[int, int], x: float, y: float, scale: float = 1.0,
          angle_deg: float = 0.0, background: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """``face`` scaled, rotated (about its centre) and placed with its top-left at (x, y) on a
    plain canvas; returns the canvas and the 2x3 matrix from face px to canvas px."""
    h, w = face.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle_deg, scale)
    m[:, 2] += np.array([x, y]) + (np.array([w, h]) / 2) * (scale - 1)
    ch, cw = canvas_hw
    canvas = cv2.warpAffine(face, m, (cw, ch), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(background,) * 3)
    return np.ascontiguousarray(canvas), m


def apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return (np.asarray(pts, np.float64) @ m[:, :2].T + m[:, 2]).astype(np.float32)


def read_video(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(bgr_to_rgb(bgr))
    cap.release()
    return frames
