"""Outputs of the live pipeline: virtual camera, MP4 recorder, preview callback, null.

A sink takes frames (uint8 HxWx3 RGB, C-contiguous; validated like pyvirtualcam's
``Camera.send``) with their capture timestamp. Sinks never modify the frames they get. A
live session calls each sink from the sink's own thread (``outputs.SinkRunner``), one frame
at a time; optional attributes: ``status`` (a short text for the stats) and ``queue_size``
(how many frames may wait for it; default 1: the newest frame wins).
``pyvirtualcam`` is imported here and nowhere else in the program.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from avatarify_app.config import VirtualCameraConfig
from avatarify_app.errors import SinkError, VirtualCameraUnavailable
from avatarify_app.frames import check_frame, fit_into
from avatarify_app.pipeline.video import VideoWriter, even_size

log = logging.getLogger(__name__)


@runtime_checkable
class Sink(Protocol):
    name: str  # unique among a session's sinks: it names the sink's thread and its stats

    def send(self, frame: np.ndarray, t_capture_s: float) -> None:
        """Deliver one frame; raises ``SinkError`` (or anything) on failure."""

    def close(self) -> None:
        """Flush and release; safe to call twice."""


def virtual_camera_help(system: str | None = None) -> str:
    """What to do on this OS (or ``system``: "Linux", "Windows", "Darwin") to get a virtual camera."""
    system = system or platform.system()
    if system == "Linux":
        return (
            "Install and load the v4l2loopback kernel module, then restart the video-call app:\n"
            "    sudo apt install v4l2loopback-dkms        # Debian/Ubuntu (Fedora: akmod-v4l2loopback)\n"
            '    sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label="Avatarify"\n'
            "The camera then appears as \"Avatarify\" in Zoom, Meet, Teams, ... "
            "Preview and recording work without it."
        )
    what = "Windows" if system == "Windows" else "macOS" if system == "Darwin" else system
    return (
        f"On {what}: install OBS Studio (https://obsproject.com), open it once and click "
        "\"Start Virtual Camera\" (then close OBS), then restart the video-call app and pick "
        "\"OBS Virtual Camera\". Preview and recording work without it."
    )


class VirtualCameraSink:
    """Frames into a virtual webcam through pyvirtualcam.

    Opens the device in the constructor and raises ``VirtualCameraUnavailable`` (its hint
    says how to get one on this OS) when there is none. Each frame is letterboxed or
    cropped (``config.fit``) into ``config.width`` x ``config.height``. With ``pace`` on,
    frames arriving faster than ``config.fps`` are skipped (never blocks the caller).
    """

    def __init__(self, config: VirtualCameraConfig | None = None, *, pace: bool = True) -> None:
        self.config = config or VirtualCameraConfig()
        self.size = (int(self.config.width), int(self.config.height))
        self.pace = pace
        self.frames_sent = 0
        self.frames_skipped = 0
        self._next_due = 0.0
        try:
            import pyvirtualcam
        except ImportError as err:  # pragma: no cover - a dependency of the package
            raise VirtualCameraUnavailable("pyvirtualcam is not installed.",
                                           "pip install pyvirtualcam\n" + virtual_camera_help()) from err
        if self.config.backend and self.config.backend not in pyvirtualcam.camera.BACKENDS:
            known = ", ".join(sorted(pyvirtualcam.camera.BACKENDS)) or "none"
            raise VirtualCameraUnavailable(
                f"Unknown virtual camera backend {self.config.backend!r} (known here: {known}).",
                virtual_camera_help())
        try:
            self._camera = pyvirtualcam.Camera(
                self.size[0], self.size[1], float(self.config.fps),
                fmt=pyvirtualcam.PixelFormat.RGB, device=self.config.device, backend=self.config.backend)
        except Exception as err:  # the native backends raise RuntimeError, others anything
            reason = " ".join(str(err).split())
            raise VirtualCameraUnavailable(f"No virtual camera could be opened ({reason}).",
                                           virtual_camera_help()) from err
        self.device = self._camera.device
        self.backend = self._camera.backend
        self.name = f"virtual camera {self.device}"
        self.status = f"{self.size[0]}x{self.size[1]} @{self.config.fps:g} fps via {self.backend}"

    def send(self, frame: np.ndarray, t_capture_s: float) -> None:
        check_frame(frame)
        if self._camera is None:
            raise SinkError(f"{self.name} is closed.")
        if self.pace:
            now = time.perf_counter()
            period = 1.0 / float(self.config.fps)
            if now < self._next_due - 0.25 * period:
                self.frames_skipped += 1
                return
            self._next_due = max(self._next_due + period, now)
        out = fit_into(frame, self.size, self.config.fit)
        self._camera.send(out)
        self.frames_sent += 1

    def close(self) -> None:
        camera, self._camera = getattr(self, "_camera", None), None
        if camera is not None:
            camera.close()


class RecorderSink:
    """Frames into an MP4 file through ``video.VideoWriter`` (H.264 where it can; ``codec``
    says which encoder). Frames are letterboxed (``fit``) into ``size`` (width, height; rounded
    down to even numbers; default: the first frame's size). No audio is written. The file
    appears under its name when the sink is closed (until then it is ``*.partial.mp4``).

    sync=False writes every frame it gets, one for one (offline runs). sync=True keeps the
    file in step with the capture clock at ``fps``: frames arriving late are repeated and
    frames arriving early are skipped, so a live recording plays at real speed.

    In a live session up to ``queue_size`` frames wait for it (about half a second at 30
    fps), so a short stall of the disk or the encoder loses nothing.
    """

    queue_size = 16

    def __init__(self, path: str | Path, fps: float = 30.0, size: tuple[int, int] | None = None, *,
                 fit: str = "letterbox", sync: bool = False,
                 prefer: tuple[str, ...] = ("ffmpeg", "avc1", "mp4v")) -> None:
        self.path = Path(path)
        self.name = f"recorder {self.path.name}"
        self.fps = float(fps)
        self.fit = fit
        self.sync = sync
        self.prefer = prefer
        self.size = even_size(size) if size else None
        self._writer: VideoWriter | None = None
        self._t0: float | None = None
        self._last: np.ndarray | None = None
        self._closed = False
        if self.size is not None:
            self._open()

    @property
    def codec(self) -> str:
        return self._writer.codec if self._writer is not None else "not started"

    @property
    def frames_written(self) -> int:
        return self._writer.frames if self._writer is not None else 0

    @property
    def status(self) -> str:
        return f"{self.frames_written} frames, {self.codec}"

    def _open(self) -> None:
        assert self.size is not None
        self._writer = VideoWriter(self.path, self.fps, self.size, fit=self.fit, prefer=self.prefer)

    def send(self, frame: np.ndarray, t_capture_s: float) -> None:
        check_frame(frame)
        if self._closed:
            raise SinkError(f"{self.name} is closed.")
        if self._writer is None:
            self.size = self.size or even_size((frame.shape[1], frame.shape[0]))
            self._open()
        out = fit_into(frame, self.size, self.fit)
        if not self.sync:
            self._writer.write(out)
            return
        if self._t0 is None:
            self._t0 = t_capture_s
        due = round((t_capture_s - self._t0) * self.fps) + 1  # frames the file should hold
        if due <= self.frames_written:
            return  # early: this slot is already filled
        while self._last is not None and self.frames_written < due - 1:
            self._writer.write(self._last)  # late: repeat the previous frame to keep time
        self._writer.write(out)
        self._last = out

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._writer.close()


class PreviewSink:
    """Calls ``callback(frame, t_capture_s)`` for every frame it gets (in a session: from its
    own output thread, the newest frame winning while the callback is busy)."""

    def __init__(self, callback: Callable[[np.ndarray, float], None], name: str = "preview") -> None:
        self.callback = callback
        self.name = name
        self.status = "ok"

    def send(self, frame: np.ndarray, t_capture_s: float) -> None:
        check_frame(frame)
        self.callback(frame, t_capture_s)

    def close(self) -> None:
        pass


class NullSink:
    """Validates and counts frames, keeps nothing (benchmarks, soak runs)."""

    def __init__(self, name: str = "null") -> None:
        self.name = name
        self.frames = 0

    @property
    def status(self) -> str:
        return f"{self.frames} frames"

    def send(self, frame: np.ndarray, t_capture_s: float) -> None:
        check_frame(frame)
        self.frames += 1

    def close(self) -> None:
        pass
