"""The driving source at start-up: the camera scan, the saved choice, the demo video.

``SourceChooser`` finds cameras off the GUI thread, offers what it found (``found``), and
opens the first usable source through the session controller: the one given on the command
line, else the one used last time, else the first camera, else the demo clip; with none of
them it says so (``none_found``) so the window can offer a video file.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from avatarify_app import paths, pipeline
from avatarify_app.gui.controller import SessionController, existing_file
from avatarify_app.gui.notices import Notices
from avatarify_app.gui.settings import AppSettings
from avatarify_app.gui.state import AppState
from avatarify_app.gui.tasks import Tasks

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


def demo_videos() -> list[Path]:
    folder = paths.ASSETS_DIR / "demo"
    return sorted(folder.glob("*.mp4")) if folder.is_dir() else []


def source_label(spec: str) -> str:
    return f"Camera {spec}" if spec.isdigit() or spec.startswith("/dev/") else Path(spec).name


class SourceChooser(QObject):
    """Start-up choice of the driving source (see the module docstring)."""

    found = Signal(str, str)  # spec, label ("": keep the one shown, or a default): offer it
    scanning = Signal(str)  # what the camera view says while looking
    none_found = Signal(str)  # no source at all: what to tell the user

    def __init__(self, state: AppState, settings: AppSettings, notices: Notices, controller: SessionController,
                 tasks: Tasks, *, camera: str | None = None, scan: bool = True,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.settings = settings
        self.notices = notices
        self.controller = controller
        self.tasks = tasks
        self.camera = camera
        self.scan = scan

    def start(self) -> None:
        if self.camera:
            self.found.emit(self.camera, "")
            self.controller.open_source(self.camera, user_chose=False)
            if self.scan:
                self.tasks.submit(pipeline.list_cameras, self._offer, lambda _err: None)
        elif self.scan:
            self.scanning.emit("Looking for cameras...")
            self.state.add_busy(+1)
            self.tasks.submit(pipeline.list_cameras, self._on_startup_scan, lambda _err: self._on_startup_scan([]))
        else:
            self._pick([])

    def _offer(self, cameras: list) -> None:
        for cam in cameras:
            self.found.emit(str(cam.spec), cam.label())

    def _on_startup_scan(self, cameras: list) -> None:
        self.state.add_busy(-1)
        self._pick(cameras)

    def _pick(self, cameras: list) -> None:
        self._offer(cameras)
        if self.state.source is not None:  # the user already chose meanwhile
            return
        saved = self.settings.get_str("source/camera")
        specs = [str(c.spec) for c in cameras]
        if saved and (saved in specs or (not saved.isdigit() and existing_file(saved))):
            spec = saved
        elif specs:
            spec = specs[0]
        elif demo_videos():
            spec = str(demo_videos()[0])
            self.found.emit(spec, f"Demo video ({Path(spec).name})")
            self.notices.tell("No camera found: the demo video drives the avatar (pick yours above).", 15000)
        else:
            self.none_found.emit("No camera found.\nOpen a video file to drive the avatar "
                                 "(button above, or File > Open video file).")
            return
        self.found.emit(spec, "")
        self.controller.open_source(spec, user_chose=False)
