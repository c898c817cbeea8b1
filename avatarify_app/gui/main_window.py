"""The main window: composed of panels that talk to controllers through signals and a view-model.

Parts (each owns its own state; none reads another's private fields):

- ``state.AppState``: the view-model (source, avatar, engine, runtime, options, calibration,
  outputs, view options), one change signal per field.
- controllers (no widgets): ``controller.SessionController`` (the session, source, avatar,
  options, framing, calibration), ``engine_control.EngineController`` (engine switches and
  options from the registry), ``outputs.OutputsController`` (virtual camera, recording),
  ``sources.SourceChooser`` (start-up source), ``avatar_actions.PortraitLibrary`` (adding
  and removing portraits).
- panels (widgets): ``live_view.LiveView`` (guide and the two views), the gallery, the
  controls dock (``panels.CameraPanel``, ``CalibrationPanel``, ``FramingPanel``,
  ``engine_panel.EnginePanel``), ``panels.OutputBar`` (the output switches, a toolbar so they
  are always in sight), ``status.StatusPanel`` and the debug view.

This module builds the parts, connects the panels' signals to the controllers and the
session's frames and stats to the panels, and owns the menus, dialogs and shutdown.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QMainWindow,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from avatarify_app import paths, pipeline
from avatarify_app.config import EngineConfig, VirtualCameraConfig
from avatarify_app.frames import IMAGE_SUFFIXES
from avatarify_app.gui.avatar_actions import PortraitLibrary
from avatarify_app.gui.controller import NUDGE_STEP, ZOOM_STEP, SessionController, existing_file
from avatarify_app.gui.debug_view import DebugView
from avatarify_app.gui.dialogs import open_shortcuts, open_warning
from avatarify_app.gui.engine_control import EngineController
from avatarify_app.gui.engine_panel import EnginePanel
from avatarify_app.gui.gallery import AvatarGallery
from avatarify_app.gui.live_view import LiveView
from avatarify_app.gui.notices import Notices
from avatarify_app.gui.outputs import OutputsController
from avatarify_app.gui.panels import (
    CONTROL_TABS,
    CalibrationPanel,
    CameraPanel,
    FramingPanel,
    OutputBar,
    controls_dock,
)
from avatarify_app.gui.settings import AppSettings
from avatarify_app.gui.sources import VIDEO_SUFFIXES, SourceChooser
from avatarify_app.gui.state import AppState, ViewOptions
from avatarify_app.gui.status import StatusPanel
from avatarify_app.gui.tasks import Tasks
from avatarify_app.pipeline import avatar_store as store

log = logging.getLogger(__name__)

# The same dialog (title and text) is not shown again within this many seconds.
DIALOG_REPEAT_S = 10.0
DEFAULT_SIZE = (1280, 800)


class MainWindow(QMainWindow):
    """The app. ``session_factory(source, **kwargs)`` builds a Session (tests inject one)."""

    def __init__(
        self,
        settings: AppSettings,
        *,
        camera: str | None = None,
        avatar: str | None = None,
        engine_config: EngineConfig | None = None,
        virtual_camera: bool = True,
        session_factory: Callable[..., Any] | None = None,
        vcam_config: VirtualCameraConfig | None = None,
        scan_cameras: bool = True,
        loop_video: bool = True,
        mirror: bool | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.setWindowTitle("Avatarify")
        self.setAcceptDrops(True)
        self.errors_shown: list[tuple[str, str]] = []
        self._recent_dialogs: dict[str, float] = {}
        self._closing = False
        self._avatar_arg = avatar

        # the view-model and the controllers
        self.state = AppState(self)
        self.state.view = ViewOptions(overlay_opacity=settings.get_float("live/overlay_opacity"),
                                      show_landmarks=settings.get_bool("live/show_landmarks"),
                                      debug=settings.get_bool("window/debug_view"))
        self.notices = Notices(self)
        self.tasks = Tasks(self)
        self.controller = SessionController(self.state, settings, self.notices, session_factory=session_factory,
                                            loop_video=loop_video, mirror=mirror, parent=self)
        self.engines = EngineController(self.state, settings, self.notices, self.controller, engine_config, self)
        self.outputs = OutputsController(self.state, settings, self.notices, self.controller, self.tasks,
                                         vcam_config=vcam_config, vcam_allowed=virtual_camera, parent=self)
        self.sources = SourceChooser(self.state, settings, self.notices, self.controller, self.tasks,
                                     camera=camera, scan=scan_cameras, parent=self)
        self.library = PortraitLibrary(self.state, self.notices, self.tasks, self)

        # the panels
        self.live_view = LiveView(self.state)
        self.gallery = AvatarGallery()
        center = QWidget()
        col = QVBoxLayout(center)
        col.addWidget(self.live_view, 1)
        col.addWidget(self.gallery)
        self.setCentralWidget(center)
        self.output_bar = OutputBar(self.state)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, self.output_bar)
        self.camera_panel = CameraPanel(self.state)
        self.calibration_panel = CalibrationPanel(self.state)
        self.framing_panel = FramingPanel(self.state)
        self.engine_panel = EnginePanel(self.state)
        self.controls_dock, self.controls_tabs = controls_dock(self, [
            ("Live", [self.camera_panel, self.calibration_panel]),
            ("Framing", [self.framing_panel]),
            ("Engine", [self.engine_panel]),
        ])
        self.controls_tabs.setCurrentIndex(
            CONTROL_TABS.index(settings.get_choice("window/controls_tab", CONTROL_TABS, "Live")))
        self.status = StatusPanel(self.statusBar(), self.state)
        self.debug_view = DebugView()
        self.debug_dock = QDockWidget("Debug view: keypoints, occlusion, motion", self)
        self.debug_dock.setObjectName("debug_dock")
        self.debug_dock.setWidget(self.debug_view)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.debug_dock)

        self._connect()
        self._build_menus()
        self._restore_window()

    # ================================================================== wiring
    def _connect(self) -> None:
        c, s = self.controller, self.state
        self.notices.problem.connect(self.show_error)
        self.notices.message.connect(self._show_message)
        bridge = c.bridge
        bridge.frame.connect(self.live_view.show_frame)
        bridge.frame.connect(self.calibration_panel.show_frame)
        bridge.frame.connect(self._on_frame_debug)
        bridge.stats.connect(self.status.show_stats)
        c.source_problem.connect(self.live_view.show_problem)
        self.sources.found.connect(self.camera_panel.add_source)
        self.sources.scanning.connect(self.live_view.show_message)
        self.sources.none_found.connect(self.live_view.show_problem)

        self.camera_panel.source_picked.connect(self._on_source_picked)
        self.camera_panel.video_requested.connect(self.choose_video_file)
        self.live_view.video_requested.connect(self.choose_video_file)

        self.gallery.picked.connect(c.set_avatar)
        self.gallery.add_requested.connect(self.choose_avatar_files)
        self.gallery.remove_requested.connect(self.library.remove)
        s.avatar_changed.connect(lambda path: path is not None and self.gallery.select_path(path, emit=False))
        self.library.added.connect(self._on_portrait_added)
        self.library.removed.connect(self._on_portrait_removed)

        cal = self.calibration_panel
        cal.calibrate_requested.connect(c.calibrate_now)
        cal.auto_requested.connect(c.auto_calibrate)
        cal.countdown.connect(self.live_view.show_countdown)

        framing = self.framing_panel
        framing.framing_requested.connect(c.set_framing)
        framing.reset_requested.connect(c.reset_framing)
        framing.toggles_requested.connect(lambda changes: c.set_toggles(**changes))

        engine = self.engine_panel
        engine.engine_picked.connect(self.engines.select)
        engine.option_changed.connect(self.engines.set_option)
        engine.half_toggled.connect(self.engines.set_half)

        bar = self.output_bar
        bar.vcam_toggled.connect(self.outputs.set_virtual_camera)
        bar.help_requested.connect(self.show_vcam_help)
        bar.record_requested.connect(self.toggle_recording)

        s.view_changed.connect(self._remember_view)
        self.debug_dock.visibilityChanged.connect(self._on_debug_visibility)

    def _build_menus(self) -> None:
        def action(menu, text: str, keys: str | list[str] | None, slot, checkable: bool = False) -> QAction:
            a = QAction(text, self)
            if keys:
                a.setShortcuts([QKeySequence(k) for k in ([keys] if isinstance(keys, str) else keys)])
            a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            a.setCheckable(checkable)
            a.triggered.connect(slot)
            menu.addAction(a)
            self.addAction(a)
            return a

        c = self.controller
        bar = self.menuBar()
        m = bar.addMenu("&File")
        action(m, "Add portrait...", "Ctrl+O", self.choose_avatar_files)
        action(m, "Open video file as camera...", "Ctrl+Shift+O", self.choose_video_file)
        action(m, "Load checkpoint...", None, self.choose_checkpoint)
        action(m, "Record to file...", "Ctrl+R", self.toggle_recording)
        m.addSeparator()
        action(m, "Quit", "Ctrl+Q", self.close)

        m = bar.addMenu("&Live")
        action(m, "Calibrate with countdown", "X", self.calibration_panel.start_countdown)
        action(m, "Auto-calibrate", "F", c.auto_calibrate)
        action(m, "Mirror", "R", c.toggle_mirror)
        action(m, "Passthrough", "P", c.toggle_passthrough)
        m.addSeparator()
        action(m, "Zoom in", "W", lambda: c.nudge(zoom=ZOOM_STEP))
        action(m, "Zoom out", "S", lambda: c.nudge(zoom=-ZOOM_STEP))
        action(m, "Move crop left", "Left", lambda: c.nudge(dx=-NUDGE_STEP))
        action(m, "Move crop right", "Right", lambda: c.nudge(dx=NUDGE_STEP))
        action(m, "Move crop up", "Up", lambda: c.nudge(dy=-NUDGE_STEP))
        action(m, "Move crop down", "Down", lambda: c.nudge(dy=NUDGE_STEP))
        action(m, "Reset framing", "0", c.reset_framing)

        m = bar.addMenu("&Avatar")
        action(m, "Previous", "A", lambda: self.gallery.step(-1))
        action(m, "Next", "D", lambda: self.gallery.step(1))
        for i in range(9):
            action(m, f"Portrait {i + 1}", str(i + 1), lambda _=False, i=i: self.gallery.select_index(i))

        m = bar.addMenu("&View")
        action(m, "Landmarks", "L", lambda: self._toggle_view("show_landmarks"))
        self.debug_action = action(m, "Debug view", "G", lambda on: self.debug_dock.setVisible(on), checkable=True)

        m = bar.addMenu("&Help")
        action(m, "Keyboard shortcuts", "F1", lambda: open_shortcuts(self))
        action(m, "Virtual camera setup", None, self.show_vcam_help)

    def _restore_window(self) -> None:
        geometry = self.settings.geometry()
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(*DEFAULT_SIZE)
        state = self.settings.window_state()
        if state is None or not self.restoreState(state):
            self.resizeDocks([self.debug_dock], [240], Qt.Orientation.Vertical)
        self.output_bar.setVisible(True)  # never hidden by an old saved state
        self.debug_dock.setVisible(self.state.view.debug)
        self.debug_action.setChecked(self.state.view.debug)

    # ================================================================== start-up
    def start(self) -> None:
        """Load the gallery, pick the avatar and the driving source, start the session."""
        self.reload_gallery()
        picked = self._pick_avatar(self._avatar_arg or self.settings.get_str("avatar/path"))
        if picked is None and self.gallery.count():
            picked = self.gallery.paths()[0]
        if picked is not None:
            self.controller.set_avatar(picked)
        self.controller.start_session(None)
        self.sources.start()
        self.outputs.restore()

    def _pick_avatar(self, wanted: str) -> Path | None:
        """The portrait ``wanted`` names: a gallery file, a file (given on the command line), or a
        gallery name such as ``astronaut``."""
        if not wanted:
            return None
        p = Path(wanted)
        known = self.gallery.paths()
        if p in known:
            return p
        if existing_file(p):
            if p.resolve() in known:
                return p.resolve()
            if self._avatar_arg:
                return p
        by_name = [q for q in known if q.stem.lower() == p.stem.lower()]
        return by_name[0] if by_name else None

    def reload_gallery(self) -> None:
        self.gallery.set_avatars(store.list_avatars())

    # ================================================================== what the user asks
    @property
    def session(self) -> Any:
        return self.controller.session

    def set_avatar(self, path: Path | str) -> None:
        self.controller.set_avatar(path)

    def _on_source_picked(self, spec: str) -> None:
        if spec != self.state.source:
            self.controller.open_source(spec)

    def open_source(self, spec: str) -> bool:
        self.camera_panel.add_source(spec)
        return self.controller.open_source(spec)

    def choose_video_file(self) -> None:
        patterns = " ".join(f"*{s}" for s in VIDEO_SUFFIXES)
        path, _ = QFileDialog.getOpenFileName(self, "Drive the avatar with a video file", "",
                                              f"Videos ({patterns});;All files (*)")
        if path:
            self.open_source(path)

    def choose_avatar_files(self) -> None:
        patterns = " ".join(f"*{s}" for s in IMAGE_SUFFIXES)
        files, _ = QFileDialog.getOpenFileNames(self, "Add portraits", "", f"Images ({patterns})")
        for f in files:
            self.add_avatar_file(f)

    def add_avatar_file(self, path: str | Path) -> None:
        self.library.add(path)

    def remove_avatar(self, path: Path | str) -> None:
        self.library.remove(path)

    def _on_portrait_added(self, path: Path) -> None:
        self.reload_gallery()
        self.gallery.select_path(path)

    def _on_portrait_removed(self, _path: Path) -> None:
        index = self.gallery.current_index()
        self.reload_gallery()
        if self.gallery.count():
            self.gallery.select_index(min(max(index, 0), self.gallery.count() - 1))

    def choose_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load a checkpoint", str(paths.CHECKPOINTS_DIR),
                                              "Checkpoints (*.pth.tar *.pth *.tar *.pt *.safetensors);;"
                                              "All files (*)")
        if path:
            self.load_checkpoint(path)

    def load_checkpoint(self, path: str | Path) -> None:
        """Run an engine with this checkpoint; the session loads it once and says if it cannot."""
        self.engines.load_checkpoint(path)

    def set_engine(self, config: EngineConfig) -> None:
        self.engines.set_engine(config)

    def toggle_recording(self) -> None:
        if self.outputs.recorder is not None:
            self.outputs.stop_recording()
            return
        # The app asks before replacing a file itself (one question, whatever the platform's dialog).
        path, _ = QFileDialog.getSaveFileName(self, "Record the avatar to a file", "avatar.mp4",
                                              "MP4 video (*.mp4);;AVI video (*.avi)",
                                              options=QFileDialog.Option.DontConfirmOverwrite)
        if path:
            self.start_recording(path)

    def start_recording(self, path: str | Path) -> bool:
        """Record to ``path``; when it exists, replace it only if the user says so."""
        path = Path(path)
        overwrite = False
        if path.exists():
            answer = QMessageBox.question(self, "Replace the file?",
                                          f"{path.name} exists already in {path.parent}.\nReplace it?",
                                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                          QMessageBox.StandardButton.No)
            if answer != QMessageBox.StandardButton.Yes:
                self.notices.tell(f"Not recording: {path.name} kept as it is", 5000)
                return False
            overwrite = True
        return self.outputs.start_recording(path, overwrite=overwrite)

    def stop_recording(self, wait: bool = False) -> None:
        self.outputs.stop_recording(wait=wait)

    def show_vcam_help(self) -> None:
        box = QMessageBox(QMessageBox.Icon.Information, "Virtual camera setup",
                          pipeline.virtual_camera_help(), QMessageBox.StandardButton.Ok, self)
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.open()

    def _toggle_view(self, field: str) -> None:
        view = self.state.view
        self.state.view = dataclasses.replace(view, **{field: not getattr(view, field)})

    def _remember_view(self, view: ViewOptions) -> None:
        if self._closing:
            return
        self.settings.set("live/overlay_opacity", view.overlay_opacity)
        self.settings.set("live/show_landmarks", view.show_landmarks)
        self.settings.set("window/debug_view", view.debug)

    def _on_debug_visibility(self, visible: bool) -> None:
        self.debug_action.setChecked(visible)
        if not self._closing:
            self.state.view = dataclasses.replace(self.state.view, debug=visible)

    def _on_frame_debug(self, event: Any) -> None:
        if self.debug_dock.isVisible():
            self.debug_view.show_event(event)

    # ================================================================== dialogs and shutdown
    def show_error(self, title: str, text: str) -> None:
        """Tell the user what went wrong, without blocking frames (window-modal, async)."""
        now = time.monotonic()
        key = f"{title}\n{text}"
        if now - self._recent_dialogs.get(key, -1e9) < DIALOG_REPEAT_S:
            return
        self._recent_dialogs[key] = now
        self.errors_shown.append((title, text))
        log.warning("%s: %s", title, text)
        if not self._closing:
            open_warning(self, title, text)

    def _show_message(self, text: str, timeout_ms: int) -> None:
        if text:
            self.statusBar().showMessage(text, timeout_ms)
        else:
            self.statusBar().clearMessage()

    def dragEnterEvent(self, event) -> None:
        if any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        """Dropped photos become portraits; a dropped video drives the avatar."""
        for url in event.mimeData().urls():
            if not url.isLocalFile():
                continue
            p = Path(url.toLocalFile())
            if p.suffix.lower() in VIDEO_SUFFIXES:
                self.open_source(str(p))
            else:
                self.add_avatar_file(p)
        event.acceptProposedAction()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Save settings, stop the session and wait for background jobs. Safe to call twice."""
        if self._closing:
            return
        self._closing = True
        self.calibration_panel.stop_countdown()
        self.settings.set("window/geometry", self.saveGeometry())
        self.settings.set("window/state", self.saveState())
        self.settings.set("window/debug_view", self.debug_dock.isVisible())
        self.settings.set("window/controls_tab", CONTROL_TABS[self.controls_tabs.currentIndex()])
        self.settings.sync()
        self.outputs.shutdown()
        self.controller.shutdown()
        self.tasks.wait()
