"""The main window: camera view beside the animated avatar, gallery, controls, status bar.

A thin view over ``pipeline.Session``: every control calls a session method, every
picture comes from a ``FrameEvent`` delivered by ``SessionController`` on this thread.
Slow work (portrait framing, camera scan, checkpoint checks) goes to ``Tasks``.

This module is the shell: it builds the window (views, controls dock, status bar, menus),
wires widgets to slots, and owns dialogs and shutdown. What the slots do lives in one
mixin per concern: ``sources``, ``avatar_actions``, ``calibration``, ``framing``,
``engine_control``, ``outputs`` and ``live_view``; the controls' widgets in ``panels``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from avatarify_app.config import (
    EngineConfig,
    LiveOptions,
    MotionOptions,
    VirtualCameraConfig,
)
from avatarify_app.engines.registry import REGISTRY
from avatarify_app.gui import avatars as store
from avatarify_app.gui.avatar_actions import AvatarActionsMixin
from avatarify_app.gui.calibration import CalibrationMixin
from avatarify_app.gui.controller import SessionController
from avatarify_app.gui.debug_view import DebugView
from avatarify_app.gui.dialogs import open_shortcuts, open_warning
from avatarify_app.gui.engine_control import EngineMixin
from avatarify_app.gui.frame_view import FrameView
from avatarify_app.gui.framing import NUDGE_STEP, ZOOM_STEP, FramingMixin
from avatarify_app.gui.gallery import AvatarGallery
from avatarify_app.gui.guide import guide_html
from avatarify_app.gui.live_view import LiveViewMixin
from avatarify_app.gui.outputs import OutputsMixin
from avatarify_app.gui.panels import (
    CalibrationPanel,
    CameraPanel,
    EnginePanel,
    FramingPanel,
    OutputPanel,
    add_controls_dock,
)
from avatarify_app.gui.settings import AppSettings
from avatarify_app.gui.sources import SourcesMixin
from avatarify_app.gui.tasks import Tasks

log = logging.getLogger(__name__)

# The same error text is not shown again within this many seconds (per-frame failures).
ERROR_REPEAT_S = 10.0


class MainWindow(SourcesMixin, AvatarActionsMixin, CalibrationMixin, FramingMixin, EngineMixin,
                 OutputsMixin, LiveViewMixin, QMainWindow):
    """The app. ``session_factory(source, **kwargs)`` builds a Session (tests inject one)."""

    error_shown = Signal(str, str)  # title, text (also recorded in ``errors_shown``)

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
        self._recent_errors: dict[str, float] = {}
        self._session_factory = session_factory
        self._vcam_config = vcam_config or VirtualCameraConfig()
        self._vcam_allowed = virtual_camera
        self._scan_cameras = scan_cameras
        self._loop_video = loop_video
        self._camera_arg = camera
        self._avatar_arg = avatar
        self._source_spec: str | None = None
        self._avatar_path: Path | None = None
        self._overlay_avatar: np.ndarray | None = None  # the session's avatar crop now on the overlay
        self._vcam_sink: Any = None
        self._recorder: Any = None
        self._recorder_path: Path | None = None
        self._recording_file = False  # recording one whole pass of a video file (lossless)
        self._last_event: Any = None
        self._last_stats: Any = None
        self._countdown_left = 0
        self.countdown_step_ms = 1000
        self._calibration_request: int | None = None  # the session request whose reference we save
        self._cuda = False
        self._closing = False
        self._meter_color = ""

        if engine_config is None:
            name = settings.get_str("engine/name")
            if name not in REGISTRY.names():
                name = "landmarks"
            engine_config = EngineConfig(name=name, half=settings.get_bool("engine/half") or None).with_options(
                checkpoint=settings.get_str("engine/checkpoint") or None)
        self._engine_config = engine_config
        self._engine_pending = False  # a switch was asked for and is not confirmed yet
        self._options = LiveOptions(
            mirror=settings.get_bool("live/mirror") if mirror is None else mirror,
            passthrough=settings.get_bool("live/passthrough"),
            motion=MotionOptions(relative=settings.get_bool("live/relative"),
                                 adapt_scale=settings.get_bool("live/adapt_scale")),
        )

        self.tasks = Tasks(self)
        self.controller = SessionController(self)
        self.controller.frame.connect(self._on_frame)
        self.controller.stats.connect(self._on_stats)
        self.controller.error.connect(self._on_error)
        self.controller.reference.connect(self._on_reference)

        self._countdown_timer = QTimer(self)
        self._countdown_timer.timeout.connect(self._countdown_tick)

        self._build_views()
        self._build_controls()
        self._build_status_bar()
        self._build_actions()
        self._restore_toggles()
        geometry = settings.geometry()
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 800)
        state = settings.window_state()
        if state is not None:
            self.restoreState(state)
        if state is None:
            self.resizeDocks([self.debug_dock], [240], Qt.Orientation.Vertical)
        self.debug_dock.setVisible(settings.get_bool("window/debug_view"))
        self.debug_action.setChecked(self.debug_dock.isVisible())
        self._update_guide()

    # ================================================================== layout
    def _build_views(self) -> None:
        self.camera_view = FrameView("camera (tracked crop)")
        self.camera_view.setToolTip("Your face as the tracker sees it. Raise 'Avatar overlay' to line "
                                    "your pose up with the portrait before calibrating.")
        self.avatar_view = FrameView("avatar")
        self.avatar_view.setToolTip("What the virtual camera sends.")
        self.camera_view.set_message("Starting...")
        self.avatar_view.set_message("Pick a portrait below")

        self.guide = QLabel()
        self.guide.setTextFormat(Qt.TextFormat.RichText)
        self.guide.setWordWrap(True)
        self.open_video_button = QPushButton("Open a video file...")
        self.open_video_button.setToolTip("Drive the avatar with a video instead of a camera.")
        self.open_video_button.clicked.connect(self.choose_video_file)
        self.open_video_button.setVisible(False)
        guide_row = QHBoxLayout()
        guide_row.addWidget(self.guide, 1)
        guide_row.addWidget(self.open_video_button)

        views = QSplitter(Qt.Orientation.Horizontal)
        views.addWidget(self.camera_view)
        views.addWidget(self.avatar_view)
        views.setChildrenCollapsible(False)

        self.gallery = AvatarGallery()
        self.gallery.picked.connect(self.set_avatar)
        self.gallery.add_requested.connect(self.choose_avatar_files)
        self.gallery.remove_requested.connect(self.remove_avatar)

        center = QWidget()
        col = QVBoxLayout(center)
        col.addLayout(guide_row)
        col.addWidget(views, 1)
        col.addWidget(self.gallery)
        self.setCentralWidget(center)

        self.debug_view = DebugView()
        self.debug_dock = QDockWidget("Debug view: keypoints, occlusion, motion", self)
        self.debug_dock.setObjectName("debug_dock")
        self.debug_dock.setWidget(self.debug_view)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.debug_dock)
        self.debug_dock.visibilityChanged.connect(self._on_debug_visibility)

    def _build_controls(self) -> None:
        """The controls dock; its widgets become the window's attributes, wired to its slots."""
        camera = CameraPanel()
        self.camera_combo, self.video_button = camera.camera_combo, camera.video_button
        self.camera_combo.activated.connect(self._on_camera_activated)
        self.video_button.clicked.connect(self.choose_video_file)

        cal = CalibrationPanel()
        self.pose_meter, self.calibration_label = cal.pose_meter, cal.calibration_label
        self.calibrate_button, self.auto_button = cal.calibrate_button, cal.auto_button
        self.overlay_slider = cal.overlay_slider
        self.landmarks_check, self.full_frame_check = cal.landmarks_check, cal.full_frame_check
        self.calibrate_button.clicked.connect(self.start_countdown)
        self.auto_button.clicked.connect(self.auto_calibrate)
        self.overlay_slider.valueChanged.connect(self._on_overlay_changed)
        self.landmarks_check.toggled.connect(self._on_landmarks_toggled)
        self.full_frame_check.toggled.connect(lambda _on: self._repaint_last())

        framing = FramingPanel()
        self.zoom_slider, self.offset_x_slider, self.offset_y_slider = framing.sliders()
        self.mirror_check, self.passthrough_check, self.relative_check, self.adapt_check = \
            framing.option_checks()
        for s in framing.sliders():
            s.valueChanged.connect(self._on_framing_changed)
        framing.reset_button.clicked.connect(self.reset_framing)
        for c in framing.option_checks():
            c.toggled.connect(self._on_options_toggled)

        engine = EnginePanel()
        self.engine_combo, self.checkpoint_button = engine.engine_combo, engine.checkpoint_button
        self.checkpoint_label, self.half_check = engine.checkpoint_label, engine.half_check
        self.device_label = engine.device_label
        self.engine_combo.activated.connect(self._on_engine_activated)
        self.checkpoint_button.clicked.connect(self.choose_checkpoint)
        self.half_check.toggled.connect(self._on_half_toggled)

        output = OutputPanel(self._vcam_allowed)
        self.vcam_check, self.vcam_status = output.vcam_check, output.vcam_status
        self.vcam_help_button, self.record_button = output.vcam_help_button, output.record_button
        self.vcam_check.toggled.connect(self.set_virtual_camera)
        self.vcam_help_button.clicked.connect(self.show_vcam_help)
        self.record_button.clicked.connect(self.toggle_recording)

        add_controls_dock(self, [camera, cal, framing, engine, output])

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.fps_label = QLabel("fps -")
        self.latency_label = QLabel("latency -")
        self.dropped_label = QLabel("dropped -")
        self.engine_label = QLabel("engine -")
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setMaximumWidth(90)
        self.busy.setVisible(False)
        self.busy.setToolTip("Working...")
        self._busy_jobs = 0
        for w in (self.busy, self.fps_label, self.latency_label, self.dropped_label, self.engine_label):
            bar.addPermanentWidget(w)

    def _build_actions(self) -> None:
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

        bar = self.menuBar()
        m = bar.addMenu("&File")
        action(m, "Add portrait...", "Ctrl+O", self.choose_avatar_files)
        action(m, "Open video file as camera...", "Ctrl+Shift+O", self.choose_video_file)
        action(m, "Load checkpoint...", None, self.choose_checkpoint)
        action(m, "Record to file...", "Ctrl+R", self.toggle_recording)
        m.addSeparator()
        action(m, "Quit", "Ctrl+Q", self.close)

        m = bar.addMenu("&Live")
        action(m, "Calibrate with countdown", "X", self.start_countdown)
        action(m, "Auto-calibrate", "F", self.auto_calibrate)
        action(m, "Mirror", "R", lambda: self.mirror_check.toggle())
        action(m, "Passthrough", "P", lambda: self.passthrough_check.toggle())
        m.addSeparator()
        action(m, "Zoom in", "W", lambda: self.nudge(zoom=ZOOM_STEP))
        action(m, "Zoom out", "S", lambda: self.nudge(zoom=-ZOOM_STEP))
        action(m, "Move crop left", "Left", lambda: self.nudge(dx=-NUDGE_STEP))
        action(m, "Move crop right", "Right", lambda: self.nudge(dx=NUDGE_STEP))
        action(m, "Move crop up", "Up", lambda: self.nudge(dy=-NUDGE_STEP))
        action(m, "Move crop down", "Down", lambda: self.nudge(dy=NUDGE_STEP))
        action(m, "Reset framing", "0", self.reset_framing)

        m = bar.addMenu("&Avatar")
        action(m, "Previous", "A", lambda: self.gallery.step(-1))
        action(m, "Next", "D", lambda: self.gallery.step(1))
        for i in range(9):
            action(m, f"Portrait {i + 1}", str(i + 1), lambda _=False, i=i: self.gallery.select_index(i))

        m = bar.addMenu("&View")
        action(m, "Landmarks", "L", lambda: self.landmarks_check.toggle())
        self.debug_action = action(m, "Debug view", "G", self._toggle_debug, checkable=True)

        m = bar.addMenu("&Help")
        action(m, "Keyboard shortcuts", "F1", self.show_shortcuts)
        action(m, "Virtual camera setup", None, self.show_vcam_help)

    def _restore_toggles(self) -> None:
        s = self.settings
        widgets = (
            (self.mirror_check, self._options.mirror),
            (self.passthrough_check, self._options.passthrough),
            (self.relative_check, self._options.motion.relative),
            (self.adapt_check, self._options.motion.adapt_scale),
            (self.landmarks_check, s.get_bool("live/show_landmarks")),
        )
        for widget, value in widgets:
            widget.blockSignals(True)
            widget.setChecked(value)
            widget.blockSignals(False)
        self.overlay_slider.setValue(round(100 * s.get_float("live/overlay_opacity")))
        self.camera_view.set_overlay_opacity(self.overlay_slider.value() / 100)
        self._select_engine_in_combo(self._engine_config.name)
        self._show_checkpoint()

    def _task_finished(self) -> None:
        self._busy(-1)

    def _busy(self, delta: int) -> None:
        """Count the long operations the user waits for; the status bar shows a busy bar meanwhile."""
        self._busy_jobs = max(0, self._busy_jobs + delta)
        self.busy.setVisible(self._busy_jobs > 0)

    # ================================================================== dialogs and misc
    def show_error(self, title: str, text: str) -> None:
        """Tell the user what went wrong, without blocking frames (window-modal, async)."""
        now = time.monotonic()
        key = f"{title}\n{text}"
        if now - self._recent_errors.get(key, -1e9) < ERROR_REPEAT_S:
            return
        self._recent_errors[key] = now
        self.errors_shown.append((title, text))
        self.error_shown.emit(title, text)
        log.warning("%s: %s", title, text)
        if not self._closing:
            open_warning(self, title, text)

    def show_shortcuts(self) -> None:
        open_shortcuts(self)

    def _toggle_debug(self, on: bool) -> None:
        self.debug_dock.setVisible(on)

    def _on_debug_visibility(self, visible: bool) -> None:
        self.debug_action.setChecked(visible)
        self._push_options()
        if not self._closing:
            self.settings.set("window/debug_view", visible)

    def _update_guide(self) -> None:
        has_avatar = self._avatar_path is not None
        calibrated = has_avatar and store.load_calibration(self._avatar_path, self._options.mirror) is not None
        self.guide.setText(guide_html(self._source_spec, has_avatar, calibrated, self._vcam_sink is not None))

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Save settings, stop the session and wait for background jobs. Safe to call twice."""
        if self._closing:
            return
        self._closing = True
        self._countdown_timer.stop()
        self.settings.set("window/geometry", self.saveGeometry())
        self.settings.set("window/state", self.saveState())
        self.settings.set("window/debug_view", self.debug_dock.isVisible())
        self.settings.sync()
        self.stop_recording(wait=True)
        self._remove_vcam()
        self.controller.shutdown()
        self.tasks.wait()

