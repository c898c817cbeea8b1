"""Driving sources: cameras, video files and still images behind one small protocol.

Every source hands out frames (uint8 HxWx3 RGB) stamped with ``time.perf_counter()``
seconds at the moment the frame was read; the session measures latency from that stamp.

``realtime`` tells the session how to hand frames over: a real-time source (a camera,
a paced video file) produces frames whether or not anybody keeps up, so only the newest
one is kept and stale ones are dropped; a non-real-time source (an unpaced file) waits
until the previous frame was taken, so nothing is lost (offline runs, recordings, tests).

``cv2.VideoCapture`` is used here and nowhere else in the program.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from avatarify_app.errors import CameraError, SourceError
from avatarify_app.frames import IMAGE_SUFFIXES, bgr_to_rgb, load_image

log = logging.getLogger(__name__)

# A camera read that fails this many times in a row means the camera is gone.
CAMERA_READ_RETRIES = 3
DEFAULT_VIDEO_FPS = 25.0


@runtime_checkable
class Source(Protocol):
    name: str
    fps: float | None
    realtime: bool  # True: newest frame wins (drops counted); False: every frame is processed

    def open(self) -> None:
        """Acquire the device or file; raises ``SourceError`` (``CameraError``) saying why not."""

    def read(self) -> tuple[np.ndarray, float] | None:
        """Next (frame, t_capture_s) or None at the end of the stream; raises ``SourceError``."""

    def close(self) -> None:
        """Release the device or file; safe to call twice."""


@dataclass(frozen=True)
class CameraInfo:
    """A camera found by ``list_cameras``; ``spec`` is what ``open_source`` takes."""

    index: int
    path: str | None
    name: str
    width: int
    height: int

    @property
    def spec(self) -> str | int:
        return self.path if self.path else self.index

    def label(self) -> str:
        return f"{self.name} ({self.width}x{self.height})"


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own stderr warnings (probing and retrying absent cameras spams them)."""
    get_level, set_level = getattr(cv2, "getLogLevel", None), getattr(cv2, "setLogLevel", None)
    level = get_level() if get_level and set_level else None
    if level is not None:
        set_level(0)  # silent
    try:
        yield
    finally:
        if level is not None:
            set_level(level)


def _fps_or_none(value: float) -> float | None:
    return float(value) if 0.5 < value < 1000 else None


class CameraSource:
    """A webcam (index or device path) or a network stream URL, read with OpenCV."""

    realtime = True

    def __init__(self, device: int | str, width: int | None = None, height: int | None = None,
                 fps: float | None = None) -> None:
        self.device = device
        self.name = f"camera {device}"
        self._want = (width, height, fps)
        self.fps: float | None = fps
        self._cap: cv2.VideoCapture | None = None
        self._failures = 0

    def open(self) -> None:
        if self._cap is not None:
            return
        with _quiet_opencv():
            cap = cv2.VideoCapture(self.device)
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"Cannot open {self.name}.")
        width, height, fps = self._want
        if width and height:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if fps:
            cap.set(cv2.CAP_PROP_FPS, fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a backlog
        self.fps = _fps_or_none(cap.get(cv2.CAP_PROP_FPS)) or fps
        self._cap = cap
        self._failures = 0
        log.info("opened %s at %.0fx%.0f", self.name, cap.get(cv2.CAP_PROP_FRAME_WIDTH),
                 cap.get(cv2.CAP_PROP_FRAME_HEIGHT))

    def read(self) -> tuple[np.ndarray, float] | None:
        if self._cap is None:
            raise CameraError(f"{self.name} is not open.")
        ok, image = self._cap.read()
        if not ok or image is None:
            self._failures += 1
            if self._failures >= CAMERA_READ_RETRIES:
                raise CameraError(f"{self.name} stopped delivering frames (disconnected or taken by "
                                  "another program).")
            time.sleep(0.02)
            return self.read()
        self._failures = 0
        return bgr_to_rgb(image), time.perf_counter()

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class VideoFileSource:
    """A video file, optionally looping.

    paced=True plays it at its own frame rate (it behaves like a camera, frames may be
    dropped when processing is slower); paced=False reads as fast as the session takes
    frames, and the session processes every frame (offline runs, recordings, tests).
    """

    def __init__(self, path: str | Path, loop: bool = False, paced: bool = True) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self.loop = loop
        self.paced = paced
        self.realtime = paced
        self.fps: float | None = None
        self.frame_count: int | None = None
        self._cap: cv2.VideoCapture | None = None
        self._clock_start = 0.0
        self._clock_frames = 0
        self._frames_read = 0

    def _open_capture(self) -> cv2.VideoCapture:
        if not self.path.is_file():
            raise SourceError(f"Video file not found: {self.path}", "Check the path.")
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"Cannot open {self.path.name} as a video.",
                              "Use a video file OpenCV can read (mp4, avi, mov, mkv).")
        return cap

    def open(self) -> None:
        if self._cap is not None:
            return
        self._cap = self._open_capture()
        self.fps = _fps_or_none(self._cap.get(cv2.CAP_PROP_FPS)) or DEFAULT_VIDEO_FPS
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = count if count > 0 else None
        self._restart_clock()
        self._frames_read = 0

    def _restart_clock(self) -> None:
        self._clock_start = time.perf_counter()
        self._clock_frames = 0

    def _pace(self) -> None:
        if not self.paced or not self.fps:
            return
        due = self._clock_start + self._clock_frames / self.fps
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        elif now - due > 1.0:  # far behind (a stall): do not burst to catch up
            self._restart_clock()
        self._clock_frames += 1

    def read(self) -> tuple[np.ndarray, float] | None:
        if self._cap is None:
            raise SourceError(f"{self.name} is not open.")
        ok, image = self._cap.read()
        if not ok and self.loop and self._frames_read > 0:
            self._cap.release()
            self._cap = self._open_capture()
            self._restart_clock()
            ok, image = self._cap.read()
        if not ok or image is None:
            return None
        self._frames_read += 1
        self._pace()
        return bgr_to_rgb(image), time.perf_counter()

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class ImageSource:
    """A still image repeated forever (paced at ``fps`` unless paced=False)."""

    def __init__(self, image: str | Path | np.ndarray, fps: float = 30.0, paced: bool = True) -> None:
        self._spec = image
        self.name = Path(image).name if isinstance(image, (str, Path)) else "image"
        self.fps: float | None = fps
        self.paced = paced
        self.realtime = paced
        self._frame: np.ndarray | None = None
        self._next = 0.0

    def open(self) -> None:
        if self._frame is None:
            if isinstance(self._spec, np.ndarray):
                from avatarify_app.frames import as_frame

                self._frame = as_frame(self._spec)
            else:
                self._frame = load_image(self._spec)
        self._next = time.perf_counter()

    def read(self) -> tuple[np.ndarray, float] | None:
        if self._frame is None:
            raise SourceError(f"{self.name} is not open.")
        if self.paced and self.fps:
            now = time.perf_counter()
            if self._next > now:
                time.sleep(self._next - now)
            self._next = max(self._next + 1.0 / self.fps, time.perf_counter() - 1.0)
        return self._frame, time.perf_counter()

    def close(self) -> None:
        if not isinstance(self._spec, np.ndarray):
            self._frame = None


def _is_camera_spec(spec: str | int) -> bool:
    if isinstance(spec, int):
        return True
    s = str(spec)
    return s.isdigit() or s.startswith("/dev/video") or "://" in s


def open_source(spec: str | int | Path, loop: bool = False, paced: bool = True) -> Source:
    """Build (not open) the source a user means by ``spec``.

    int or digit string -> camera index; ``/dev/video*`` -> camera path; a URL -> network
    stream (treated as a camera); an image file -> still image; anything else -> video file.
    """
    if isinstance(spec, Path):
        spec = str(spec)
    if _is_camera_spec(spec):
        return CameraSource(int(spec) if str(spec).isdigit() else spec)
    path = Path(spec)
    if not path.exists():
        raise SourceError(f"No such camera or file: {spec}",
                          "Pass a camera index (0, 1, ...), a device path like /dev/video0, "
                          "or an existing video/image file.")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource(path, paced=paced)
    return VideoFileSource(path, loop=loop, paced=paced)


def _linux_camera_name(index: int) -> str | None:
    name_file = Path(f"/sys/class/video4linux/video{index}/name")
    try:
        return name_file.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def list_cameras(max_index: int = 8) -> list[CameraInfo]:
    """Cameras that open and deliver a frame (probing opens each; takes a moment)."""
    linux = platform.system() == "Linux"
    found: list[CameraInfo] = []
    with _quiet_opencv():
        for index in range(max_index):
            path = f"/dev/video{index}" if linux else None
            if linux and not Path(path).exists():
                continue
            cap = cv2.VideoCapture(index)
            try:
                if not cap.isOpened():
                    continue
                ok, image = cap.read()
                if not ok or image is None:
                    continue
                name = (_linux_camera_name(index) if linux else None) or f"Camera {index}"
                found.append(CameraInfo(index, path, name, image.shape[1], image.shape[0]))
            finally:
                cap.release()
    return found
