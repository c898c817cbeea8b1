"""`doctor`: what this machine can run, and how to fix what is missing.

Checks, each printed as ``[ok]``, ``[warn]`` or ``[fail]`` with a fix: Python and torch,
the device that will really run the engines, mediapipe and its face models, the system
libraries Qt's X11 plugin needs (Linux), cameras, the virtual camera, FOMM checkpoints,
onnxruntime providers, the MP4 encoder.
Exit status 1 when something the app cannot work without is missing, else 0.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Mapping
from pathlib import Path

# Face models the tracker loads from the mediapipe package (relative to its folder).
MEDIAPIPE_MODELS = (
    "modules/face_detection/face_detection_short_range.tflite",
    "modules/face_detection/face_detection_full_range_sparse.tflite",
    "modules/face_landmark/face_landmark.tflite",
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-cameras", action="store_true", help="skip probing cameras (it opens each one)")
    p.add_argument("--max-camera-index", type=int, default=8, help="probe camera indices below this")


class Report:
    def __init__(self, out=None) -> None:
        self.out = out or sys.stdout
        self.failures = 0
        self.warnings = 0

    def line(self, level: str, what: str, text: str, fix: str = "") -> None:
        if level == "fail":
            self.failures += 1
        elif level == "warn":
            self.warnings += 1
        print(f"[{level:<4s}] {what:<16s} {text}", file=self.out)
        for fix_line in fix.splitlines():
            print(f"{'':23s}{fix_line}", file=self.out)


def check_python(r: Report) -> None:
    v = sys.version_info
    ok = (3, 10) <= v[:2] < (3, 13)
    r.line("ok" if ok else "warn", "python", f"{platform.python_version()} ({sys.executable})",
           "" if ok else "Use Python 3.10, 3.11 or 3.12 (the versions mediapipe 0.10.21 has wheels for).")


def check_torch(r: Report) -> None:
    try:
        import torch
    except ImportError:
        r.line("fail", "torch", "not installed", "Run `make setup` (or pip install torch).")
        return
    cuda = torch.version.cuda or "none"
    r.line("ok", "torch", f"{torch.__version__} (CUDA build: {cuda})")
    from avatarify_app.engines.device import describe_device, resolve_device

    device = resolve_device("auto")
    text = describe_device(device)
    if device.type == "cpu":
        r.line("warn", "device", f"{text}: the neural engines will be slow (FOMM a few fps, LivePortrait "
               "seconds per frame)",
               "For them live use an NVIDIA GPU with a CUDA build of torch (see the Makefile's TORCH_SPEC), "
               "here or on another machine (`serve` there, `--engine remote` here), or Apple silicon (MPS) for FOMM. "
               "The landmarks engine runs in real time on a CPU.")
    else:
        r.line("ok", "device", f"{text} will run the engines")


def check_mediapipe(r: Report) -> None:
    try:
        import mediapipe
    except ImportError as err:
        r.line("fail", "mediapipe", f"cannot import ({err})", "pip install mediapipe==0.10.21 (Python 3.10-3.12).")
        return
    root = Path(mediapipe.__file__).parent
    version = getattr(mediapipe, "__version__", "?")
    missing = [m for m in MEDIAPIPE_MODELS if not (root / m).is_file()]
    if missing:
        r.line("fail", "mediapipe", f"{version}: face models missing: {', '.join(Path(m).name for m in missing)}",
               "Install mediapipe==0.10.21, the last release that ships its face models.")
    else:
        r.line("ok", "mediapipe", f"{version}, face models present ({len(MEDIAPIPE_MODELS)} .tflite files)")


def check_qt(r: Report, env: Mapping[str, str] | None = None, system: str | None = None) -> None:
    """Whether the desktop app's Qt can load its X11 plugin (``qt_check``): a failure where a desktop
    session would use X11, a warning where it may not (no display, Wayland, QT_QPA_PLATFORM)."""
    from avatarify_app import qt_check

    env = os.environ if env is None else env
    system = system or platform.system()
    if system != "Linux":
        r.line("ok", "qt platform", f"{system}: Qt's platform plugin needs no extra system libraries")
        return
    if qt_check.xcb_plugin() is None:
        r.line("warn", "qt platform", "PySide6's X11 plugin not found: the desktop app is not installed",
               "Run `make setup` (or pip install PySide6-Essentials); `live --headless` works without it.")
        return
    missing = qt_check.missing_xcb_libraries()
    if not missing:
        r.line("ok", "qt platform", "X11 (xcb): every library it needs is installed")
        return
    uses = qt_check.qt_uses_xcb(env, system)
    on_desktop = bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))
    where = " (Qt may use Wayland in this session)" if uses is None else ""
    r.line("fail" if uses and on_desktop else "warn", "qt platform",
           f"X11 (xcb) cannot load: missing {', '.join(missing)}; the desktop app would not start{where}",
           "Install them (`live --headless` works without them):\n" + qt_check.install_commands(missing))


def check_cameras(r: Report, max_index: int) -> None:
    from avatarify_app.pipeline import list_cameras

    cameras = list_cameras(max_index)
    if cameras:
        found = "; ".join(f"{c.spec}: {c.label()}" for c in cameras)
        r.line("ok", "cameras", found)
    else:
        r.line("warn", "cameras", "none found",
               "Connect a webcam and close programs that use it, or drive the avatar with a video file: "
               "--camera PATH.")


def check_virtual_camera(r: Report) -> None:
    from avatarify_app.config import VirtualCameraConfig
    from avatarify_app.errors import VirtualCameraUnavailable
    from avatarify_app.pipeline import VirtualCameraSink

    try:
        sink = VirtualCameraSink(VirtualCameraConfig(width=640, height=480))
    except VirtualCameraUnavailable as err:
        r.line("warn", "virtual camera", err.message, err.hint)
        return
    try:
        r.line("ok", "virtual camera", f"{sink.device} via {sink.backend}")
    finally:
        sink.close()


def check_engines(r: Report) -> None:
    """Each registered engine: can it run here, and why (not); which one ``--engine auto`` picks."""
    from avatarify_app.config import EngineConfig
    from avatarify_app.engines import REGISTRY
    from avatarify_app.errors import AvatarifyError

    for spec in REGISTRY.specs():
        found = spec.detect(EngineConfig(name=spec.name))
        r.line("ok" if found.ok else "warn", f"engine {spec.name}", found.reason)
    try:
        choice = REGISTRY.choose(EngineConfig())
        r.line("ok", "engine auto", f"picks {choice.name}: {choice.explain()}")
    except AvatarifyError as err:
        r.line("fail", "engine auto", err.message, err.hint)


def check_onnxruntime(r: Report) -> None:
    try:
        import onnxruntime
    except ImportError:
        r.line("warn", "onnxruntime", "not installed", "pip install onnxruntime (faster FOMM on a CPU).")
        return
    providers = onnxruntime.get_available_providers()
    r.line("ok", "onnxruntime", f"{onnxruntime.__version__}: {', '.join(providers)}")


def check_encoder(r: Report) -> None:
    from avatarify_app.pipeline.video import ffmpeg_with_x264

    if ffmpeg_with_x264():
        r.line("ok", "mp4 encoder", "H.264 (libx264 in imageio-ffmpeg's ffmpeg)")
    else:
        r.line("warn", "mp4 encoder", "no bundled ffmpeg with libx264: recordings fall back to OpenCV",
               "pip install imageio-ffmpeg for H.264 recordings that every player opens.")


def run(args: argparse.Namespace) -> int:
    r = Report()
    print(f"avatarify-app doctor on {platform.system()} {platform.release()} ({platform.machine()})")
    check_python(r)
    check_torch(r)
    check_mediapipe(r)
    check_qt(r)
    if args.no_cameras:
        r.line("warn", "cameras", "not probed (--no-cameras)")
    else:
        check_cameras(r, args.max_camera_index)
    check_virtual_camera(r)
    check_engines(r)
    check_onnxruntime(r)
    check_encoder(r)
    verdict = "cannot run: fix the [fail] lines" if r.failures else "ready"
    print(f"{verdict} ({r.failures} failed, {r.warnings} warnings)")
    return 1 if r.failures else 0
