"""Outputs of the live pipeline: virtual camera, MP4 recorder, preview callback, null.

A sink takes frames (uint8 HxWx3 RGB, C-contiguous; validated like pyvirtualcam's
``Camera.send``) with their capture timestamp. Sinks never modify the frames they get.
``pyvirtualcam`` is imported here and nowhere else in the program.
"""

from __future__ import annotations

import logging
import platform
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from avatarify_app.config import VirtualCameraConfig
from avatarify_app.errors import SinkError, VirtualCameraUnavailable
from avatarify_app.frames import check_frame, fit_into, rgb_to_bgr

log = logging.getLogger(__name__)


@runtime_checkable
class Sink(Protocol):
    name: str

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


def _even(n: int) -> int:
    return max(2, n - (n % 2))


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


def ffmpeg_with_x264() -> str | None:
    """Path of imageio-ffmpeg's bundled ffmpeg when it has libx264, else None."""
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
        out = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, text=True,
                             timeout=20, check=False).stdout
    except (ImportError, OSError, RuntimeError, subprocess.SubprocessError):
        return None
    return exe if " libx264 " in out else None


class RecorderSink:
    """Frames into an MP4 file.

    Tries, in order: H.264 with imageio-ffmpeg's bundled ffmpeg (libx264, yuv420p) through
    a pipe, OpenCV's 'avc1' (H.264), OpenCV's 'mp4v' (MPEG-4 part 2). ``codec`` says which
    one is used. Frames are letterboxed (``fit``) into ``size`` (width, height; rounded down
    to even numbers; default: the first frame's size). No audio is written.

    sync=False writes every frame it gets, one for one (offline runs). sync=True keeps the
    file in step with the capture clock at ``fps``: frames arriving late are repeated and
    frames arriving early are skipped, so a live recording plays at real speed.
    """

    def __init__(self, path: str | Path, fps: float = 30.0, size: tuple[int, int] | None = None, *,
                 fit: str = "letterbox", sync: bool = False,
                 prefer: tuple[str, ...] = ("ffmpeg", "avc1", "mp4v")) -> None:
        self.path = Path(path)
        self.name = f"recorder {self.path.name}"
        self.fps = float(fps)
        self.fit = fit
        self.sync = sync
        self.prefer = prefer
        self.size = (_even(size[0]), _even(size[1])) if size else None
        self.codec = "not started"
        self.frames_written = 0
        self._proc: subprocess.Popen | None = None
        self._stderr = None
        self._writer: cv2.VideoWriter | None = None
        self._t0: float | None = None
        self._last: np.ndarray | None = None
        self._closed = False
        if self.size is not None:
            self._open()

    @property
    def status(self) -> str:
        return f"{self.frames_written} frames, {self.codec}"

    def _open(self) -> None:
        assert self.size is not None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise SinkError(f"Cannot create the folder for {self.path}: {err}") from err
        w, h = self.size
        errors = []
        for kind in self.prefer:
            if kind == "ffmpeg":
                exe = ffmpeg_with_x264()
                if exe is None:
                    errors.append("ffmpeg: no bundled ffmpeg with libx264")
                    continue
                self._stderr = tempfile.TemporaryFile()
                cmd = [exe, "-hide_banner", "-loglevel", "error", "-y",
                       "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", f"{self.fps:g}",
                       "-i", "-", "-an", "-c:v", "libx264", "-preset", "veryfast", "-crf", "18",
                       "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(self.path)]
                self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                              stderr=self._stderr)
                self.codec = "H.264 (libx264 via imageio-ffmpeg)"
                break
            writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*kind), self.fps, (w, h))
            if writer.isOpened():
                self._writer = writer
                self.codec = "H.264 (OpenCV avc1)" if kind == "avc1" else f"MPEG-4 (OpenCV {kind})"
                break
            writer.release()
            errors.append(f"OpenCV {kind}: not available")
        else:
            raise SinkError(f"Cannot write {self.path.name}: " + "; ".join(errors),
                            "Check that the folder is writable and the name ends in .mp4.")
        log.info("recording %s at %dx%d with %s", self.path, w, h, self.codec)

    def _ffmpeg_error(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace").strip()[-500:]

    def _write(self, frame: np.ndarray) -> None:
        if self._proc is not None:
            try:
                self._proc.stdin.write(frame.tobytes())
            except (BrokenPipeError, OSError, ValueError) as err:
                raise SinkError(f"ffmpeg stopped while recording {self.path.name}: {self._ffmpeg_error()}",
                                "Check the free disk space and that the file is writable.") from err
        else:
            self._writer.write(rgb_to_bgr(frame))
        self.frames_written += 1

    def send(self, frame: np.ndarray, t_capture_s: float) -> None:
        check_frame(frame)
        if self._closed:
            raise SinkError(f"{self.name} is closed.")
        if self.size is None:
            self.size = (_even(frame.shape[1]), _even(frame.shape[0]))
            self._open()
        out = fit_into(frame, self.size, self.fit)
        if not self.sync:
            self._write(out)
            return
        if self._t0 is None:
            self._t0 = t_capture_s
        due = round((t_capture_s - self._t0) * self.fps) + 1  # frames the file should hold
        if due <= self.frames_written:
            return  # early: this slot is already filled
        while self._last is not None and self.frames_written < due - 1:
            self._write(self._last)  # late: repeat the previous frame to keep time
        self._write(out)
        self._last = out

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass
            try:
                code = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                code = -1
            message = self._ffmpeg_error()
            self._stderr.close()
            self._stderr = None
            if code != 0:
                raise SinkError(f"ffmpeg failed to finish {self.path.name} (exit {code}): {message}")
        log.info("recorded %d frames to %s (%s)", self.frames_written, self.path, self.codec)


class PreviewSink:
    """Calls ``callback(frame, t_capture_s)`` for every frame (from the worker thread)."""

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
