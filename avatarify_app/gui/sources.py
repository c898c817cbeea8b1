"""The driving source: start-up, the camera scan, the camera picker and the session.

``SourcesMixin`` is part of ``MainWindow``: it opens a camera or video file, builds the
session once a source is known, and falls back to the demo video when no camera is found.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QFileDialog

from avatarify_app import paths, pipeline
from avatarify_app.config import TrackingConfig
from avatarify_app.errors import AvatarifyError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


def demo_videos() -> list[Path]:
    folder = paths.ASSETS_DIR / "demo"
    return sorted(folder.glob("*.mp4")) if folder.is_dir() else []


class SourcesMixin:
    """Start-up and the driving source of ``MainWindow`` (uses its widgets and state)."""

    def start(self) -> None:
        """Load the gallery, pick the avatar and the driving source, start the session."""
        self.reload_gallery()
        wanted = self._avatar_arg or self.settings.get_str("avatar/path")
        picked = False
        if wanted:
            p = Path(wanted)
            picked = self.gallery.select_path(p) or self.gallery.select_path(p.resolve())
            if not picked and p.is_file() and self._avatar_arg:
                self.set_avatar(p)
                picked = True
            if not picked:  # a name from the gallery, e.g. --avatar astronaut
                names = [q for q in self.gallery.paths() if q.stem.lower() == p.stem.lower()]
                picked = bool(names) and self.gallery.select_path(names[0])
        if not picked and self.gallery.count():
            self.gallery.select_index(0)
        self._start_session(None)
        if self._camera_arg:
            self._add_source_item(self._camera_arg)
            self.open_source(self._camera_arg, user_chose=False)
            if self._scan_cameras:
                self.tasks.submit(pipeline.list_cameras, self._on_cameras_found, lambda _err: None)
        elif self._scan_cameras:
            self.camera_view.set_message("Looking for cameras...")
            self._busy(+1)
            self.tasks.submit(pipeline.list_cameras, self._on_cameras_startup,
                              lambda err: self._on_cameras_startup([]))
        else:
            self._on_cameras_startup([])
        if self._vcam_allowed and self.settings.get_bool("output/virtual_camera"):
            self.vcam_check.setChecked(True)

    def _on_cameras_found(self, cameras: list) -> None:
        for cam in cameras:
            self._add_source_item(str(cam.spec), f"{cam.label()}")

    def _on_cameras_startup(self, cameras: list) -> None:
        if self._scan_cameras:
            self._busy(-1)
        self._on_cameras_found(cameras)
        if self._source_spec is not None:  # the user already chose meanwhile
            return
        saved = self.settings.get_str("source/camera")
        specs = [str(c.spec) for c in cameras]
        if saved and (saved in specs or Path(saved).is_file()):
            spec = saved
        elif specs:
            spec = specs[0]
        elif demo_videos():
            spec = str(demo_videos()[0])
            self._add_source_item(spec, f"Demo video ({Path(spec).name})")
            self.statusBar().showMessage("No camera found: the demo video drives the avatar. "
                                         "Pick a camera or your own video above.", 15000)
        else:
            self.camera_view.set_message("No camera found.\nOpen a video file to drive the avatar "
                                         "(button above, or File > Open video file).")
            self.open_video_button.setVisible(True)
            self._update_guide()
            return
        self._add_source_item(spec)
        self.open_source(spec, user_chose=False)

    def _add_source_item(self, spec: str, label: str | None = None) -> None:
        for i in range(self.camera_combo.count()):
            if self.camera_combo.itemData(i) == spec:
                if label:
                    self.camera_combo.setItemText(i, label)
                return
        if label is None:
            label = f"Camera {spec}" if spec.isdigit() or spec.startswith("/dev/") else Path(spec).name
        self.camera_combo.addItem(label, spec)

    def _select_source_item(self, spec: str) -> None:
        for i in range(self.camera_combo.count()):
            if self.camera_combo.itemData(i) == spec:
                self.camera_combo.setCurrentIndex(i)

    def _on_camera_activated(self, index: int) -> None:
        spec = self.camera_combo.itemData(index)
        if spec and spec != self._source_spec:
            self.open_source(spec)

    def choose_video_file(self) -> None:
        patterns = " ".join(f"*{s}" for s in VIDEO_SUFFIXES)
        path, _ = QFileDialog.getOpenFileName(self, "Drive the avatar with a video file", "",
                                              f"Videos ({patterns});;All files (*)")
        if path:
            self._add_source_item(path)
            self.open_source(path)

    def _is_file_spec(self, spec: str) -> bool:
        return not (spec.isdigit() or spec.startswith("/dev/video") or "://" in spec)

    def open_source(self, spec: str, user_chose: bool = True) -> bool:
        """Drive the avatar from ``spec`` (camera index/path or file); builds the session once."""
        spec = str(spec)
        try:
            source = pipeline.open_source(spec, loop=self._loop_video and self._is_file_spec(spec))
        except AvatarifyError as err:
            self.camera_view.set_message(f"{err.message}\n{err.hint}")
            self.open_video_button.setVisible(True)
            if user_chose:
                self.show_error("Cannot open the camera or file", str(err))
            return False
        if self._recorder is not None:
            self.stop_recording()  # a recording belongs to one source
        self._source_spec = spec
        self._add_source_item(spec)
        self._select_source_item(spec)
        self.settings.set("source/camera", spec)
        self.open_video_button.setVisible(False)
        self.camera_view.set_message("Opening...")
        if self.session is None:
            self._start_session(source)
        else:
            self.session.set_source(source)
        self._update_guide()
        return True

    def _start_session(self, source: Any) -> None:
        """Build and start the session (``source`` may be None until the user picks one)."""
        factory = self._session_factory or pipeline.Session
        session = factory(source, engine_config=self._engine_config, options=self._current_options(),
                          tracking=TrackingConfig(crop=self._options.crop))
        self.controller.attach(session)
        if self._avatar_path is not None:
            self._apply_avatar_to_session(self._avatar_path)
        session.start()

    @property
    def session(self) -> Any:
        return self.controller.session

