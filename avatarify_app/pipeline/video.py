"""Video files: reading (imageio-ffmpeg's bundled ffmpeg) and writing MP4 (H.264), for every
part of the program that touches one (``animate``, ``evaluate``, ``bench`` and the recorder).

Reading: ``probe_video`` (metadata: fps, size after rotation, duration, audio), ``iter_video``
(frames as they are displayed: ffmpeg applies a phone's rotation tag; ``start`` seeks by time,
``max_frames`` stops early).

Writing: ``VideoWriter`` encodes H.264 (libx264, yuv420p) through ffmpeg, else OpenCV's avc1,
else mp4v; with ``audio_from`` it copies that file's first audio stream (AAC). Frames go to
``<name>.partial<suffix>`` beside the target, which is renamed into place by ``close()`` once
the encoder finished cleanly: an interrupted or failed write never leaves a broken file under
the target's name, and never replaces an existing file with one.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from avatarify_app.errors import SinkError, SourceError
from avatarify_app.frames import check_frame, fit_into, rgb_to_bgr

log = logging.getLogger(__name__)

PARTIAL = ".partial"


# ----------------------------------------------------------------------------- reading
def probe_video(path: str | Path) -> dict[str, Any]:
    """ffmpeg's metadata of a video file (``fps``, ``size`` as displayed, ``duration``,
    ``audio_codec``, ...); raises SourceError when it is missing or not a video."""
    import imageio_ffmpeg

    p = Path(path)
    if not p.is_file():
        raise SourceError(f"Video not found: {p}", "Check the path to the video.")
    try:
        gen = imageio_ffmpeg.read_frames(str(p), input_params=["-hide_banner"])
        meta = next(gen)
        gen.close()
    except (OSError, RuntimeError, StopIteration) as err:
        log.debug("ffmpeg cannot read %s: %s", p, err)
        raise SourceError(f"Cannot read {p.name} as a video (ffmpeg: {_last_line(str(err))}).",
                          "Use an .mp4/.avi/.mov file.") from err
    return meta


def iter_video(path: str | Path, *, start: float = 0.0, max_frames: int = 0) -> Iterator[np.ndarray]:
    """The frames (uint8 RGB) of a video file, from ``start`` seconds, at most ``max_frames`` (0 = all)."""
    import imageio_ffmpeg

    params = ["-hide_banner", *(["-ss", f"{start:.3f}"] if start > 0 else [])]
    gen = imageio_ffmpeg.read_frames(str(path), input_params=params)
    try:
        meta = next(gen)
    except (OSError, RuntimeError, StopIteration) as err:
        gen.close()
        log.debug("ffmpeg cannot read %s: %s", path, err)
        raise SourceError(f"Cannot read {Path(path).name} as a video (ffmpeg: {_last_line(str(err))}).",
                          "Use an .mp4/.avi/.mov file.") from err
    w, h = meta["size"]
    n = 0
    try:
        for buf in gen:
            yield np.frombuffer(buf, np.uint8).reshape(h, w, 3).copy()
            n += 1
            if max_frames and n >= max_frames:
                break
    finally:
        gen.close()


def read_video(path: str | Path) -> tuple[Iterator[np.ndarray], dict[str, Any]]:
    """(frame iterator, metadata) of a video file; raises SourceError when unreadable."""
    meta = probe_video(path)
    return iter_video(path), meta


def frame_count_estimate(meta: dict[str, Any]) -> int:
    """Frames the metadata promises (fps x duration), 0 when it does not say."""
    return round(float(meta.get("duration") or 0) * float(meta.get("fps") or 0))


_FFMPEG_PREFIX = re.compile(r"^\[[^\]]*@ ?(0x)?[0-9a-fA-F]+\]\s*")
_FFMPEG_BANNER = ("ffmpeg version", "built with", "configuration:", "libav", "libsw", "libpostproc")


def ffmpeg_reason(log_text: str, *, first: bool = True) -> str:
    """One line of ffmpeg's log for the user: without its banner and its "[component @ 0x...]"
    prefixes; the ``first`` line (the cause, in an error-level log) or the last one (ffmpeg's
    summary, in an info-level log where warnings come first)."""
    lines = [_FFMPEG_PREFIX.sub("", line).strip() for line in log_text.splitlines()]
    lines = [line for line in lines if line and not line.lower().startswith(_FFMPEG_BANNER)]
    if not lines:
        return "no message from ffmpeg"
    return lines[0] if first else lines[-1]


def _last_line(text: str) -> str:
    """ffmpeg's summary line from imageio-ffmpeg's reading error (its log follows "=== stderr ===")."""
    return ffmpeg_reason(text.split("=== stderr ===")[-1], first=False)


# ----------------------------------------------------------------------------- writing
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


def partial_path(path: Path) -> Path:
    """Where ``VideoWriter`` writes until it finished: ``clip.partial.mp4`` for ``clip.mp4``."""
    return path.with_name(path.stem + PARTIAL + path.suffix)


def even_size(size: tuple[int, int]) -> tuple[int, int]:
    """(width, height) rounded down to even numbers (yuv420p needs them), at least 2."""
    return max(2, size[0] - size[0] % 2), max(2, size[1] - size[1] % 2)


class VideoWriter:
    """An MP4 file written frame by frame (see the module docstring).

    Frames of another size are letterboxed (``fit``) into ``size`` (rounded down to even).
    ``codec`` says which encoder runs; ``frames`` counts what was written; ``has_audio`` says
    whether ``audio_from``'s audio is copied.
    """

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int], *,
                 audio_from: str | Path | None = None, fit: str = "letterbox",
                 prefer: tuple[str, ...] = ("ffmpeg", "avc1", "mp4v")) -> None:
        self.path = Path(path)
        self.fps = float(fps)
        self.size = even_size(size)
        self.fit = fit
        self.frames = 0
        self.codec = "not started"
        self.has_audio = False
        self._partial = partial_path(self.path)
        self._proc: subprocess.Popen | None = None
        self._stderr: Any = None
        self._cv: cv2.VideoWriter | None = None
        self._closed = False
        self._failed = False  # a write failed and was reported: close() cleans up without raising again
        if self.path.is_dir():
            raise SinkError(f"{self.path} is a folder.", "Give a file name ending in .mp4.")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise SinkError(f"Cannot create the folder for {self.path.name}: {err.strerror or err}.",
                            "Pick a folder you can write to.") from err
        audio = None
        if audio_from is not None and probe_video(audio_from).get("audio_codec"):
            audio = str(audio_from)
        errors = []
        for kind in prefer:
            if kind == "ffmpeg":
                exe = ffmpeg_with_x264()
                if exe is None:
                    errors.append("ffmpeg: no bundled ffmpeg with libx264")
                    continue
                self._start_ffmpeg(exe, audio)
                break
            writer = cv2.VideoWriter(str(self._partial), cv2.VideoWriter_fourcc(*kind), self.fps, self.size)
            if writer.isOpened():
                self._cv = writer
                self.codec = "H.264 (OpenCV avc1)" if kind == "avc1" else f"MPEG-4 (OpenCV {kind})"
                break
            writer.release()
            errors.append(f"OpenCV {kind}: not available")
        else:
            raise SinkError(f"Cannot write {self.path.name}: " + "; ".join(errors),
                            "Check that the folder is writable and the name ends in .mp4.")
        log.info("writing %s at %dx%d, %.2f fps, with %s", self.path, *self.size, self.fps, self.codec)

    def _start_ffmpeg(self, exe: str, audio: str | None) -> None:
        w, h = self.size
        cmd = [exe, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", f"{self.fps:g}", "-i", "-"]
        if audio is not None:
            cmd += ["-i", audio, "-map", "0:v:0", "-map", "1:a:0", "-c:a", "aac", "-shortest"]
        else:
            cmd += ["-an"]
        cmd += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
                "-movflags", "+faststart", "-f", "mp4", str(self._partial)]
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._stderr)
        self.codec = "H.264 (libx264)"
        self.has_audio = audio is not None

    def _ffmpeg_error(self) -> str:
        """ffmpeg's reason in one line (its whole error-level log goes to the debug log)."""
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace")
        log.debug("ffmpeg's log for %s:\n%s", self.path, text)
        return ffmpeg_reason(text)

    def write(self, frame: np.ndarray) -> None:
        check_frame(frame)
        if self._closed:
            raise SinkError(f"{self.path.name} is closed.")
        if frame.shape[1::-1] != self.size:
            frame = fit_into(frame, self.size, self.fit)
        if self._proc is not None:
            try:
                self._proc.stdin.write(frame.tobytes())
            except (BrokenPipeError, OSError, ValueError) as err:
                self._failed = True
                raise SinkError(f"Cannot write {self.path.name}: {self._ffmpeg_error()}",
                                "Write to a file ending in .mp4 in a folder you can write to, "
                                "with free disk space.") from err
        else:
            self._cv.write(rgb_to_bgr(frame))
        self.frames += 1

    def close(self) -> None:
        """Finish the file and move it into place (raises SinkError when the encoder failed;
        the partial file is then removed). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        ok, message = True, ""
        if self._cv is not None:
            self._cv.release()
            self._cv = None
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass
            try:
                code = proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                code = -1
            message = self._ffmpeg_error()
            self._stderr.close()
            self._stderr = None
            ok = code == 0
            if not ok:
                message = f"exit {code}: {message}"
        if ok and self.frames > 0 and self._partial.is_file():
            os.replace(self._partial, self.path)
            log.info("wrote %d frames to %s (%s)", self.frames, self.path, self.codec)
            return
        self._drop_partial()
        if not ok and not self._failed:
            raise SinkError(f"The encoder failed to finish {self.path.name} ({message}).",
                            "Check the free disk space and that the folder is writable.")

    def _drop_partial(self) -> None:
        try:
            self._partial.unlink(missing_ok=True)
        except OSError as err:  # e.g. a name the file system refuses: nothing was written to remove
            log.debug("cannot remove %s: %s", self._partial, err)

    def abort(self) -> None:
        """Stop without keeping anything (the target, if it existed, is untouched)."""
        if self._closed:
            return
        self._closed = True
        if self._cv is not None:
            self._cv.release()
            self._cv = None
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait()
            self._stderr.close()
            self._stderr = None
        self._drop_partial()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
