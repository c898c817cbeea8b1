"""The main window: camera view beside the animated avatar, gallery, controls, status bar.

A thin view over ``pipeline.Session``: every control calls a session method, every
picture comes from a ``FrameEvent`` delivered by ``SessionController`` on this thread.
Slow work (portrait framing, camera scan, checkpoint checks) goes to ``Tasks``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSlider,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from avatarify_app import paths, pipeline
from avatarify_app.config import (
    EngineConfig,
    LiveOptions,
    MotionOptions,
    TrackingConfig,
    VirtualCameraConfig,
)
from avatarify_app.errors import AvatarifyError, CheckpointError
from avatarify_app.frames import IMAGE_SUFFIXES
from avatarify_app.gui import avatars as store
from avatarify_app.gui.controller import SessionController
from avatarify_app.gui.debug_view import DebugView
from avatarify_app.gui.frame_view import FrameView
from avatarify_app.gui.gallery import AvatarGallery
from avatarify_app.gui.settings import AppSettings
from avatarify_app.gui.tasks import Tasks

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
ENGINES = (("landmarks", "Built-in (landmarks)"), ("fomm", "FOMM (neural network)"))
ZOOM_RANGE = (0.5, 2.0)
ZOOM_STEP = 0.05
NUDGE_STEP = 0.02
OFFSET_LIMIT = 0.5
CROP_SIZE = 256
# The same error text is not shown again within this many seconds (per-frame failures).
ERROR_REPEAT_S = 10.0
MAX_DIALOG_TEXT = 420
HALF_OFF_TIP = "Half precision is for the FOMM engine running on a CUDA GPU; it does not run on one now."


def demo_videos() -> list[Path]:
    folder = paths.ASSETS_DIR / "demo"
    return sorted(folder.glob("*.mp4")) if folder.is_dir() else []


def validate_checkpoint(path: str) -> str:
    """Load a FOMM checkpoint strictly (off the GUI thread); raise CheckpointError saying what is wrong."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"Checkpoint not found: {p}", "Choose an existing .pth.tar file.")
    from avatarify_app.models import load_fomm

    load_fomm(p)
    return str(p)


def _labelled_slider(minimum: int, maximum: int, value: int, tip: str) -> QSlider:
    s = QSlider(Qt.Orientation.Horizontal)
    s.setRange(minimum, maximum)
    s.setValue(value)
    s.setToolTip(tip)
    s.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    return s


class MainWindow(QMainWindow):
    """The app. ``session_factory(source, **kwargs)`` builds a Session (tests inject one)."""

    error_shown = Signal(str, str)  # title, text (also recorded in ``errors_shown``)

    def __init__(
        self,
        settings: AppSettings,
        *,
        camera: str | None = None,
        avatar: str | None = None,
        engine: str | None = None,
        checkpoint: str | None = None,
        virtual_camera: bool = True,
        session_factory: Callable[..., Any] | None = None,
        vcam_config: VirtualCameraConfig | None = None,
        scan_cameras: bool = True,
        loop_video: bool = True,
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

        name = engine or ("fomm" if checkpoint else settings.get_str("engine/name"))
        if name not in dict(ENGINES):
            name = "landmarks"
        ckpt = checkpoint or settings.get_str("engine/checkpoint") or None
        self._engine_config = EngineConfig(name=name, checkpoint=ckpt,
                                           half=settings.get_bool("engine/half") or None)
        self._engine_pending = False  # a switch was asked for and is not confirmed yet
        self._options = LiveOptions(
            mirror=settings.get_bool("live/mirror"),
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
        panel = QWidget()
        col = QVBoxLayout(panel)

        # -- source
        box = QGroupBox("Camera")
        form = QVBoxLayout(box)
        self.camera_combo = QComboBox()
        self.camera_combo.setToolTip("The camera (or video file) that drives the avatar.")
        self.camera_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.camera_combo.setMinimumContentsLength(14)
        self.camera_combo.activated.connect(self._on_camera_activated)
        self.video_button = QPushButton("Video file...")
        self.video_button.clicked.connect(self.choose_video_file)
        row = QHBoxLayout()
        row.addWidget(self.camera_combo, 1)
        row.addWidget(self.video_button)
        form.addLayout(row)
        col.addWidget(box)

        # -- calibration
        box = QGroupBox("Calibrate")
        form = QVBoxLayout(box)
        hint = QLabel("Copy the portrait's pose and expression\n(raise the overlay to compare),\n"
                      "then press Calibrate.")
        hint.setWordWrap(True)
        form.addWidget(hint)
        self.pose_meter = QProgressBar()
        self.pose_meter.setRange(0, 100)
        self.pose_meter.setValue(0)
        self.pose_meter.setFormat("pose match: %p%")
        self.pose_meter.setToolTip("How well your face matches the portrait's pose. Aim for green.")
        form.addWidget(self.pose_meter)
        row = QHBoxLayout()
        self.calibrate_button = QPushButton("Calibrate (X)")
        self.calibrate_button.setToolTip("3-2-1 countdown, then your current face becomes the reference.")
        self.calibrate_button.clicked.connect(self.start_countdown)
        self.auto_button = QPushButton("Auto (F)")
        self.auto_button.setToolTip("Pick the frame that best matches the portrait over the next second.")
        self.auto_button.clicked.connect(self.auto_calibrate)
        row.addWidget(self.calibrate_button)
        row.addWidget(self.auto_button)
        form.addLayout(row)
        self.calibration_label = QLabel("Not calibrated")
        self.calibration_label.setWordWrap(True)
        form.addWidget(self.calibration_label)
        flay = QFormLayout()
        self.overlay_slider = _labelled_slider(0, 100, 35, "Opacity of the portrait drawn over the camera.")
        self.overlay_slider.valueChanged.connect(self._on_overlay_changed)
        flay.addRow("Avatar overlay", self.overlay_slider)
        form.addLayout(flay)
        self.landmarks_check = QCheckBox("Show landmarks (L)")
        self.landmarks_check.toggled.connect(self._on_landmarks_toggled)
        self.full_frame_check = QCheckBox("Show the full camera frame")
        self.full_frame_check.toggled.connect(lambda _on: self._repaint_last())
        form.addWidget(self.landmarks_check)
        form.addWidget(self.full_frame_check)
        col.addWidget(box)

        # -- framing and motion
        box = QGroupBox("Framing and motion")
        form = QFormLayout(box)
        self.zoom_slider = _labelled_slider(int(ZOOM_RANGE[0] * 100), int(ZOOM_RANGE[1] * 100), 100,
                                            "Zoom into the face (W / S).")
        self.offset_x_slider = _labelled_slider(-50, 50, 0, "Move the crop left/right (arrow keys).")
        self.offset_y_slider = _labelled_slider(-50, 50, 0, "Move the crop up/down (arrow keys).")
        for s in (self.zoom_slider, self.offset_x_slider, self.offset_y_slider):
            s.valueChanged.connect(self._on_framing_changed)
        form.addRow("Zoom", self.zoom_slider)
        form.addRow("Left/right", self.offset_x_slider)
        form.addRow("Up/down", self.offset_y_slider)
        reset = QPushButton("Reset framing")
        reset.clicked.connect(self.reset_framing)
        form.addRow("", reset)
        self.mirror_check = QCheckBox("Mirror camera (R)")
        self.passthrough_check = QCheckBox("Passthrough: send the camera (P)")
        self.relative_check = QCheckBox("Relative motion")
        self.relative_check.setToolTip("On: move the portrait by how much you moved since calibrating.\n"
                                       "Off: copy your absolute pose (needs similar face shapes).")
        self.adapt_check = QCheckBox("Adapt movement scale")
        self.adapt_check.setToolTip("Scale your motion to the portrait's face size.")
        for c in (self.mirror_check, self.passthrough_check, self.relative_check, self.adapt_check):
            c.toggled.connect(self._on_options_toggled)
            form.addRow(c)
        col.addWidget(box)

        # -- engine
        box = QGroupBox("Engine")
        form = QFormLayout(box)
        self.engine_combo = QComboBox()
        for key, label in ENGINES:
            self.engine_combo.addItem(label, key)
        self.engine_combo.activated.connect(self._on_engine_activated)
        form.addRow("Engine", self.engine_combo)
        self.checkpoint_button = QPushButton("Load checkpoint...")
        self.checkpoint_button.setToolTip("A FOMM checkpoint such as vox-adv-cpk.pth.tar.")
        self.checkpoint_button.clicked.connect(self.choose_checkpoint)
        form.addRow(self.checkpoint_button)
        self.checkpoint_label = QLabel("")
        self.checkpoint_label.setWordWrap(True)
        form.addRow(self.checkpoint_label)
        self.half_check = QCheckBox("Half precision (GPU)")
        self.half_check.setEnabled(False)
        self.half_check.setToolTip(HALF_OFF_TIP)
        self.half_check.toggled.connect(self._on_half_toggled)
        form.addRow(self.half_check)
        self.device_label = QLabel("device: -")
        form.addRow(self.device_label)
        col.addWidget(box)

        # -- output
        box = QGroupBox("Output")
        form = QVBoxLayout(box)
        self.vcam_check = QCheckBox("Virtual camera")
        self.vcam_check.setToolTip("Send the avatar to a virtual camera that video-call apps can pick.")
        self.vcam_check.toggled.connect(self.set_virtual_camera)
        self.vcam_check.setEnabled(self._vcam_allowed)
        self.vcam_status = QLabel("off" if self._vcam_allowed else "disabled (--no-vcam)")
        self.vcam_status.setWordWrap(True)
        self.vcam_help_button = QPushButton("How to set up the virtual camera...")
        self.vcam_help_button.clicked.connect(self.show_vcam_help)
        self.record_button = QPushButton("Record to file...")
        self.record_button.clicked.connect(self.toggle_recording)
        form.addWidget(self.vcam_check)
        form.addWidget(self.vcam_status)
        form.addWidget(self.vcam_help_button)
        form.addWidget(self.record_button)
        col.addWidget(box)
        col.addStretch(1)

        scroll = QScrollArea()
        scroll.setWidget(panel)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(max(340, panel.sizeHint().width() + scroll.verticalScrollBar().sizeHint().width() + 8))
        dock = QDockWidget("Controls", self)
        dock.setObjectName("controls_dock")
        dock.setWidget(scroll)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)

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

    # ================================================================== start-up
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

    def _show_cuda(self, cuda: bool) -> None:
        """Offer half precision while the engine runs on a CUDA GPU (the engine resolved the device)."""
        if cuda == self._cuda:
            return
        self._cuda = cuda
        self.half_check.setEnabled(cuda)
        self.half_check.setToolTip("Half precision for the FOMM generator (faster on most GPUs)."
                                   if cuda else HALF_OFF_TIP)
        self.half_check.blockSignals(True)
        self.half_check.setChecked(cuda and bool(self._engine_config.half))
        self.half_check.blockSignals(False)

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

    # ================================================================== source / session
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

    # ================================================================== avatars
    def reload_gallery(self) -> None:
        self.gallery.set_avatars(store.list_avatars())

    def set_avatar(self, path: Path | str) -> None:
        """Animate this portrait; restores its calibration and framing if it has them."""
        path = Path(path)
        self._avatar_path = path
        self.settings.set("avatar/path", str(path))
        # The overlay and the debug view show the session's aligned crop of the portrait
        # (FrameEvent.avatar), which arrives with the frames once the session framed it.
        framing = store.load_framing(path)
        self._set_framing(*(framing or (1.0, 0.0, 0.0)), save=False)
        if self.session is not None:
            self._apply_avatar_to_session(path)
        self._update_guide()

    def _apply_avatar_to_session(self, path: Path) -> None:
        session = self.session
        session.set_avatar(str(path))
        session.update_options(self._current_options())
        self._restore_calibration(path)

    def _restore_calibration(self, path: Path) -> bool:
        """Give the session the reference saved for ``path`` and the current mirror setting.

        Call it after ``update_options``: the session runs commands in order, so a mirror
        change (which clears the reference) is applied before the restored one.
        """
        self._calibration_request = None
        mirror = self._options.mirror
        calibration = store.load_calibration(path, mirror=mirror)
        if calibration is not None:
            self.session.set_reference(*calibration)
            self.calibration_label.setText("Calibration restored for this portrait"
                                           + (" (mirrored camera)" if mirror else ""))
        elif mirror and store.load_calibration(path, mirror=False) is not None:
            self.calibration_label.setText("Calibrated with the camera not mirrored: "
                                           "press Calibrate (X) for the mirrored camera")
        elif not mirror and store.load_calibration(path, mirror=True) is not None:
            self.calibration_label.setText("Calibrated with the camera mirrored: "
                                           "press Calibrate (X) for the camera as is")
        else:
            self.calibration_label.setText("Not calibrated for this portrait yet: press Calibrate (X)")
        self._update_guide()
        return calibration is not None

    def choose_avatar_files(self) -> None:
        patterns = " ".join(f"*{s}" for s in IMAGE_SUFFIXES)
        files, _ = QFileDialog.getOpenFileNames(self, "Add portraits", "", f"Images ({patterns})")
        for f in files:
            self.add_avatar_file(f)

    def add_avatar_file(self, path: str | Path) -> None:
        """Frame the face off the GUI thread, save it in the user folder, then select it."""
        path = Path(path)
        self.statusBar().showMessage(f"Finding the face in {path.name}...")
        self._busy(+1)

        def done(saved: Path) -> None:
            self._task_finished()
            self.statusBar().showMessage(f"Added {saved.name}", 4000)
            self.reload_gallery()
            self.gallery.select_path(saved)

        def failed(err: BaseException) -> None:
            self._task_finished()
            self.statusBar().clearMessage()
            self.show_error("Cannot add this portrait", f"{path.name}: {err}")

        self.tasks.submit(lambda: store.import_avatar(path), done, failed)

    def remove_avatar(self, path: Path) -> None:
        avatar = next((a for a in store.list_avatars() if a.path == Path(path)), None)
        if avatar is None:
            return
        try:
            store.remove_avatar(avatar)
        except AvatarifyError as err:
            self.show_error("Cannot remove this portrait", str(err))
            return
        index = self.gallery.current_index()
        self.reload_gallery()
        if self.gallery.count():
            self.gallery.select_index(min(index, self.gallery.count() - 1))

    def _task_finished(self) -> None:
        self._busy(-1)

    def _busy(self, delta: int) -> None:
        """Count the long operations the user waits for; the status bar shows a busy bar meanwhile."""
        self._busy_jobs = max(0, self._busy_jobs + delta)
        self.busy.setVisible(self._busy_jobs > 0)

    # drag and drop of photos (portraits) or videos (driving source)
    def dragEnterEvent(self, event) -> None:
        if any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        for url in event.mimeData().urls():
            if not url.isLocalFile():
                continue
            p = Path(url.toLocalFile())
            if p.suffix.lower() in VIDEO_SUFFIXES:
                self.open_source(str(p))
            else:
                self.add_avatar_file(p)
        event.acceptProposedAction()

    # ================================================================== calibration
    def start_countdown(self) -> None:
        if self.session is None:
            self.show_error("Nothing to calibrate", "Open a camera or a video file first.")
            return
        self._countdown_left = 3
        self.camera_view.set_message("3")
        self.calibrate_button.setEnabled(False)
        self._countdown_timer.start(self.countdown_step_ms)

    def _countdown_tick(self) -> None:
        self._countdown_left -= 1
        if self._countdown_left > 0:
            self.camera_view.set_message(str(self._countdown_left))
            return
        self._countdown_timer.stop()
        self.calibrate_button.setEnabled(True)
        self.camera_view.set_message("")
        self.calibrate_now()

    def calibrate_now(self) -> None:
        """The next frame with a face becomes the reference (saved for this avatar)."""
        if self.session is None:
            return
        self._calibration_request = self.session.recalibrate()
        self.calibration_label.setText("Calibrating: hold still...")

    def auto_calibrate(self) -> None:
        if self.session is None:
            self.show_error("Nothing to calibrate", "Open a camera or a video file first.")
            return
        self._calibration_request = self.session.auto_calibrate()
        self.calibration_label.setText("Auto-calibrating: looking for your best match...")

    def _on_reference(self, event: Any) -> None:
        """The session's reference changed: save it when it answers our calibrate request."""
        request = self._calibration_request
        if request is None or event.request != request or event.crop is None:
            return
        self._calibration_request = None
        if self._avatar_path is None:
            return
        store.save_calibration(self._avatar_path, event.crop, event.landmarks, mirror=event.mirror)
        match = f" (pose match {round(100 * event.pose_match)}%)" if event.pose_match is not None else ""
        self.calibration_label.setText(f"Calibrated{match}: saved for this portrait"
                                       + (" (mirrored camera)" if event.mirror else ""))
        self.statusBar().showMessage("Calibrated", 3000)
        self._update_guide()

    # ================================================================== options
    def _current_options(self) -> LiveOptions:
        """The options to send: the debug arrays are asked for only while the debug view shows."""
        return dataclasses.replace(self._options, debug=self.debug_dock.isVisible())

    def _push_options(self) -> None:
        if self.session is not None:
            self.session.update_options(self._current_options())

    def _on_options_toggled(self, _on: bool = False) -> None:
        mirror_before = self._options.mirror
        self._options = dataclasses.replace(
            self._options,
            mirror=self.mirror_check.isChecked(),
            passthrough=self.passthrough_check.isChecked(),
            motion=MotionOptions(relative=self.relative_check.isChecked(),
                                 adapt_scale=self.adapt_check.isChecked()),
        )
        s = self.settings
        s.set("live/mirror", self._options.mirror)
        s.set("live/passthrough", self._options.passthrough)
        s.set("live/relative", self._options.motion.relative)
        s.set("live/adapt_scale", self._options.motion.adapt_scale)
        self._push_options()
        if self._options.mirror != mirror_before and self.session is not None and self._avatar_path is not None:
            # The session dropped its reference (the picture flipped): bring back the one saved
            # for this orientation, or say that this orientation needs its own calibration.
            self._restore_calibration(self._avatar_path)

    def _framing(self) -> tuple[float, float, float]:
        return (self.zoom_slider.value() / 100, self.offset_x_slider.value() / 100,
                self.offset_y_slider.value() / 100)

    def _set_framing(self, zoom: float, dx: float, dy: float, save: bool = True) -> None:
        for slider, value in ((self.zoom_slider, zoom), (self.offset_x_slider, dx), (self.offset_y_slider, dy)):
            slider.blockSignals(True)
            slider.setValue(round(value * 100))
            slider.blockSignals(False)
        self._apply_framing(save)

    def _on_framing_changed(self, _value: int = 0) -> None:
        self._apply_framing(save=True)

    def _apply_framing(self, save: bool) -> None:
        zoom, dx, dy = self._framing()
        crop = dataclasses.replace(self._options.crop, zoom=zoom, offset_x=dx, offset_y=dy)
        self._options = dataclasses.replace(self._options, crop=crop)
        if save and self._avatar_path is not None:
            store.save_framing(self._avatar_path, zoom, dx, dy)
        self._push_options()

    def nudge(self, zoom: float = 0.0, dx: float = 0.0, dy: float = 0.0) -> None:
        z, x, y = self._framing()
        z = min(max(z + zoom, ZOOM_RANGE[0]), ZOOM_RANGE[1])
        x = min(max(x + dx, -OFFSET_LIMIT), OFFSET_LIMIT)
        y = min(max(y + dy, -OFFSET_LIMIT), OFFSET_LIMIT)
        self._set_framing(z, x, y)

    def reset_framing(self) -> None:
        self._set_framing(1.0, 0.0, 0.0)

    def _on_overlay_changed(self, value: int) -> None:
        self.camera_view.set_overlay_opacity(value / 100)
        self.settings.set("live/overlay_opacity", value / 100)

    def _on_landmarks_toggled(self, on: bool) -> None:
        self.settings.set("live/show_landmarks", on)
        self._repaint_last()

    # ================================================================== engine
    def _select_engine_in_combo(self, name: str) -> None:
        i = self.engine_combo.findData(name)
        if i >= 0:
            self.engine_combo.setCurrentIndex(i)

    def _show_checkpoint(self) -> None:
        ckpt = self._engine_config.checkpoint
        self.checkpoint_label.setText(f"checkpoint: {Path(ckpt).name}" if ckpt else
                                      "checkpoint: none loaded (FOMM searches checkpoints/)")

    def _on_engine_activated(self, index: int) -> None:
        name = self.engine_combo.itemData(index)
        if name != self._engine_config.name:
            self.set_engine(dataclasses.replace(self._engine_config, name=name))

    def set_engine(self, config: EngineConfig) -> None:
        """Switch engines; on failure the error dialog shows and the previous engine stays."""
        self._engine_config = config
        self._select_engine_in_combo(config.name)
        self._show_checkpoint()
        if self.session is not None:
            self._engine_pending = True
            self.engine_label.setText(f"engine: loading {config.name}...")
            self.session.set_engine(config)
        else:
            self._remember_engine(config)

    def _remember_engine(self, config: EngineConfig) -> None:
        self.settings.set("engine/name", config.name)
        self.settings.set("engine/checkpoint", config.checkpoint or "")

    def _engine_switch_failed(self) -> str:
        """Show the engine that really runs (the previous one) or fall back to landmarks."""
        self._engine_pending = False
        session = self.session
        running = session.stats().engine if session is not None else None
        if running is None and self._engine_config.name != "landmarks":
            fallback = EngineConfig(name="landmarks", device=self._engine_config.device)
            self.set_engine(fallback)
            return "the built-in landmarks engine"
        if session is not None and running is not None:
            self._engine_config = session.engine_config
        self._select_engine_in_combo(self._engine_config.name)
        self._show_checkpoint()
        return f"the {self._engine_config.name} engine"

    def choose_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load a FOMM checkpoint", str(paths.CHECKPOINTS_DIR),
                                              "Checkpoints (*.pth.tar *.pth *.tar *.pt);;All files (*)")
        if path:
            self.load_checkpoint(path)

    def load_checkpoint(self, path: str) -> None:
        """Validate off the GUI thread, then switch to FOMM with it (or show why not)."""
        self.statusBar().showMessage(f"Checking {Path(path).name}...")
        self._busy(+1)
        self.checkpoint_button.setEnabled(False)

        def done(valid: str) -> None:
            self._task_finished()
            self.checkpoint_button.setEnabled(True)
            self.statusBar().showMessage(f"Loading FOMM with {Path(valid).name}...", 4000)
            self.set_engine(dataclasses.replace(self._engine_config, name="fomm", checkpoint=valid))

        def failed(err: BaseException) -> None:
            self._task_finished()
            self.checkpoint_button.setEnabled(True)
            self.statusBar().clearMessage()
            self.show_error("Cannot load this checkpoint",
                            f"{err}\n\nThe app keeps running with the {self._engine_config.name} engine.")

        self.tasks.submit(lambda: validate_checkpoint(path), done, failed)

    def _on_half_toggled(self, on: bool) -> None:
        self.settings.set("engine/half", on)
        self.set_engine(dataclasses.replace(self._engine_config, half=True if on else None))

    # ================================================================== outputs
    def set_virtual_camera(self, on: bool) -> None:
        if not on:
            self._remove_vcam()
            self.settings.set("output/virtual_camera", False)
            self.vcam_status.setText("off")
            self._update_guide()
            return
        if self._vcam_sink is not None:
            return
        if self.session is None:
            self.vcam_status.setText("starts with the camera")
            self.settings.set("output/virtual_camera", True)
            QTimer.singleShot(500, self._retry_vcam)
            return
        try:
            sink = pipeline.VirtualCameraSink(self._vcam_config)
            self.session.add_sink(sink)
        except AvatarifyError as err:
            self._vcam_failed(err)
            return
        self._vcam_sink = sink
        self.settings.set("output/virtual_camera", True)
        self.vcam_status.setText(f"on: {getattr(sink, 'name', 'virtual camera')}")
        self._update_guide()

    def _retry_vcam(self) -> None:
        if self.vcam_check.isChecked() and self._vcam_sink is None and not self._closing:
            if self.session is None:
                QTimer.singleShot(500, self._retry_vcam)
            else:
                self.set_virtual_camera(True)

    def _remove_vcam(self) -> None:
        sink, self._vcam_sink = self._vcam_sink, None
        if sink is None:
            return
        if self.session is not None:
            self.session.remove_sink(sink)
        sink.close()

    def _vcam_failed(self, err: BaseException) -> None:
        self._remove_vcam()
        self.vcam_check.blockSignals(True)
        self.vcam_check.setChecked(False)
        self.vcam_check.blockSignals(False)
        self.settings.set("output/virtual_camera", False)
        self.vcam_status.setText("unavailable: see How to set up")
        self.show_error("Virtual camera unavailable", f"{err}\n\n{pipeline.virtual_camera_help()}")
        self._update_guide()

    def show_vcam_help(self) -> None:
        box = QMessageBox(QMessageBox.Icon.Information, "Virtual camera setup",
                          pipeline.virtual_camera_help(), QMessageBox.StandardButton.Ok, self)
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.open()

    def toggle_recording(self) -> None:
        if self._recorder is not None:
            self.stop_recording()
            return
        path, _ = QFileDialog.getSaveFileName(self, "Record the avatar to a file", "avatar.mp4",
                                              "MP4 video (*.mp4);;AVI video (*.avi)")
        if path:
            self.start_recording(path)

    def _is_video_file(self, spec: str | None) -> bool:
        return (spec is not None and self._is_file_spec(spec)
                and Path(spec).suffix.lower() not in IMAGE_SUFFIXES)

    def start_recording(self, path: str | Path) -> bool:
        """Record what the sinks get.

        A camera (real time): in step with the capture clock (``sync=True``: frames the engine
        could not keep up with are repeated), so the file plays at real speed. A video file:
        one whole pass of it, every frame processed and written once at the file's own frame
        rate; the file is read from its start without pacing while recording, and the
        recording stops by itself at its end.
        """
        session = self.session
        if session is None or self._source_spec is None:
            self.show_error("Nothing to record", "Open a camera or a video file first.")
            return False
        whole_file = self._is_video_file(self._source_spec)
        try:
            if whole_file:
                source = pipeline.open_source(self._source_spec, loop=False, paced=False)
                source.open()  # to learn its frame rate; the session opens it again
                fps = source.fps or 25.0
                source.close()
                sink = pipeline.RecorderSink(str(path), fps=fps, sync=False)
            else:
                fps = (getattr(session.source, "fps", None) or getattr(self._last_stats, "fps", 0.0)
                       or 25.0)
                sink = pipeline.RecorderSink(str(path), fps=max(5.0, round(fps)), sync=True)
        except AvatarifyError as err:
            self.show_error("Cannot record", str(err))
            return False
        if whole_file:
            session.set_source(source, add_sinks=(sink,))  # exactly this pass's frames
        else:
            session.add_sink(sink)
        self._recorder, self._recorder_path, self._recording_file = sink, Path(path), whole_file
        self.record_button.setText("Stop recording")
        self.statusBar().showMessage(f"Recording {Path(self._source_spec).name} from its start to {path}"
                                     if whole_file else f"Recording to {path}")
        return True

    def stop_recording(self, wait: bool = False) -> None:
        """Stop feeding the recorder and finish the file off the GUI thread (``wait``: block)."""
        sink, self._recorder = self._recorder, None
        if sink is None:
            return
        whole_file, self._recording_file = self._recording_file, False
        if self.session is not None:
            self.session.remove_sink(sink)
            if whole_file and not self._closing and self._source_spec is not None:
                # back to playing the file like a camera
                self.session.set_source(pipeline.open_source(self._source_spec, loop=self._loop_video))
        self.record_button.setText("Record to file...")
        path = self._recorder_path
        if wait:
            try:
                sink.close()
            except AvatarifyError as err:
                log.warning("recording failed: %s", err)
            return
        self.statusBar().showMessage(f"Finishing {path}...")
        self._busy(+1)

        def done(_result: Any) -> None:
            self._busy(-1)
            self.statusBar().showMessage(f"Saved {path} ({sink.frames_written} frames)", 6000)

        def failed(err: BaseException) -> None:
            self._busy(-1)
            self.statusBar().clearMessage()
            self.show_error("Recording failed", str(err))

        self.tasks.submit(sink.close, done, failed)

    # ================================================================== events from the session
    def _on_frame(self, event: Any) -> None:
        self._last_event = event
        self._paint_camera(event)
        status = event.status
        if status == "no_avatar":
            self.avatar_view.set_message("Pick a portrait below")
        elif event.output is not None:
            self.avatar_view.set_message("")
            self.avatar_view.set_frame(event.output)
        badge = {"no_face": "no face: look into the camera", "calibrating": "calibrating...",
                 "passthrough": "passthrough (camera sent as is)", "no_engine": "no engine running",
                 "error": "engine error (see message)"}.get(status, "")
        self.avatar_view.set_badge(badge)
        self.camera_view.set_badge("no face" if status == "no_face" else "")
        match = event.pose_match
        if match is not None:
            value = round(100 * float(match))
            self.pose_meter.setValue(value)
            color = "#3c3" if value >= 80 else "#db3" if value >= 60 else "#d44"
            if color != self._meter_color:  # restyling is costly: only when the colour changes
                self._meter_color = color
                self.pose_meter.setStyleSheet(f"QProgressBar::chunk {{ background: {color}; }}")
        if self.debug_dock.isVisible():
            self.debug_view.show_event(event)

    def _repaint_last(self) -> None:
        if self._last_event is not None:
            self._paint_camera(self._last_event)

    def _paint_camera(self, event: Any) -> None:
        view = self.camera_view
        if self._countdown_left <= 0 and view.message():
            view.set_message("")
        show_landmarks = self.landmarks_check.isChecked()
        box = event.box
        if self.full_frame_check.isChecked() or event.crop is None:
            view.set_frame(event.camera)
            if self._overlay_avatar is not None:
                self._overlay_avatar = None
                view.set_overlay(None)
            if box is not None:
                half = box.side / 2
                view.set_box((box.cx - half, box.cy - half, box.cx + half, box.cy + half))
            else:
                view.set_box(None)
            view.set_points(event.landmarks if show_landmarks else None)
            return
        view.set_frame(event.crop)
        avatar = getattr(event, "avatar", None)
        if avatar is not self._overlay_avatar:  # the aligned avatar crop: lines up with the driving crop
            self._overlay_avatar = avatar
            view.set_overlay(avatar)
        points = None
        if event.landmarks is not None and box is not None:
            points = box.to_crop(np.asarray(event.landmarks, np.float32), event.crop.shape[0])
        if points is not None and len(points):
            x0, y0 = points.min(axis=0)
            x1, y1 = points.max(axis=0)
            view.set_box((float(x0), float(y0), float(x1), float(y1)))
        else:
            view.set_box(None)
        view.set_points(points if show_landmarks else None)

    def _on_stats(self, stats: Any) -> None:
        self._last_stats = stats
        if self._recording_file and self.session is not None and self.session.ended:
            self.stop_recording()  # the whole video file is in the recording
        self.fps_label.setText(f"{stats.fps:.1f} fps")
        self.latency_label.setText(f"latency {stats.latency_ms_p50:.0f} ms (p95 {stats.latency_ms_p95:.0f})")
        self.dropped_label.setText(f"dropped {stats.dropped}")
        self.engine_label.setText(f"engine: {stats.engine} | {stats.device}")
        self.device_label.setText(f"device: {stats.device}")
        self._show_cuda(str(stats.device or "").startswith("cuda"))
        session = self.session
        if self._engine_pending and session is not None and session.engine_config == self._engine_config \
                and stats.engine == self._engine_config.name:
            self._engine_pending = False
            self._remember_engine(self._engine_config)
            self.statusBar().showMessage(f"Engine: {stats.engine} on {stats.device}", 4000)
        if self._vcam_sink is not None:
            text = (stats.sinks or {}).get(getattr(self._vcam_sink, "name", ""), None)
            if text:
                self.vcam_status.setText(f"on: {text}")

    def _on_error(self, event: Any) -> None:
        stage, message = event.stage, event.message
        log.info("session error (%s): %s", stage, message)
        if stage == "source":
            self.camera_view.set_message(f"{message}\n\nChoose another camera or open a video file.")
            self.open_video_button.setVisible(True)
            self.statusBar().showMessage(message, 10000)
        elif stage == "tracking":
            self.statusBar().showMessage(message, 5000)
        elif stage == "engine":
            if self._engine_pending or self.session is None or self.session.stats().engine is None:
                now_running = self._engine_switch_failed()
                self.show_error("Cannot switch the engine",
                                f"{message}\n\nThe app keeps running with {now_running}.")
            else:
                self.show_error("Engine problem", message)
        elif stage == "avatar":
            self.show_error("Cannot use this portrait", message)
        elif stage == "sink":
            failed = getattr(event, "error", None)
            if self._vcam_sink is not None and isinstance(failed, pipeline.VirtualCameraUnavailable):
                self._vcam_failed(failed)
            else:
                self.show_error("Output problem", message)
        else:
            self.show_error("Problem", message)

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
        if self._closing:
            return
        short = text
        if len(text) > MAX_DIALOG_TEXT:  # keep the dialog readable; everything is under Show Details
            head, _, tail = text.partition("\n\n")
            short = (head[: MAX_DIALOG_TEXT - 3] + "...") if len(head) > MAX_DIALOG_TEXT else head
            if tail:
                short += "\n\n" + tail[-MAX_DIALOG_TEXT:]
        box = QMessageBox(QMessageBox.Icon.Warning, title, short, QMessageBox.StandardButton.Ok, self)
        if short != text:
            box.setDetailedText(text)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        box.open()

    def show_shortcuts(self) -> None:
        text = ("1-9  pick a portrait        A / D  previous / next\n"
                "X  calibrate (3-2-1)        F  auto-calibrate\n"
                "R  mirror     P  passthrough     L  landmarks     G  debug view\n"
                "W / S  zoom     arrows  move the crop     0  reset framing\n"
                "Ctrl+O  add portrait   Ctrl+Shift+O  video file   Ctrl+R  record")
        box = QMessageBox(QMessageBox.Icon.Information, "Keyboard shortcuts", text,
                          QMessageBox.StandardButton.Ok, self)
        box.open()

    def _toggle_debug(self, on: bool) -> None:
        self.debug_dock.setVisible(on)

    def _on_debug_visibility(self, visible: bool) -> None:
        self.debug_action.setChecked(visible)
        self._push_options()
        if not self._closing:
            self.settings.set("window/debug_view", visible)

    def _update_guide(self) -> None:
        has_avatar = self._avatar_path is not None
        has_source = self._source_spec is not None
        calibrated = has_avatar and store.load_calibration(self._avatar_path, self._options.mirror) is not None
        vcam = self._vcam_sink is not None

        def step(n: int, text: str, done: bool, current: bool) -> str:
            mark = "&#10003;" if done else f"{n}."
            style = "font-weight:bold;color:#2a7fff;" if current else ("color:gray;" if done else "")
            return f"<span style='{style}'>{mark} {text}</span>"

        current = (0 if not has_source else 1 if not has_avatar else 2 if not calibrated else
                   3 if not vcam else 4)
        parts = [
            step(1, ("Camera" if self._source_spec.isdigit() or self._source_spec.startswith("/dev/")
                     else "Driving video") if has_source else "Choose a camera or video", has_source,
                 current == 0),
            step(2, "Pick a portrait below", has_avatar, current == 1),
            step(3, "Copy its pose, press Calibrate (X)", calibrated, current == 2),
            step(4, "Turn on Virtual camera for your call", vcam, current == 3),
        ]
        self.guide.setText(" &nbsp;&rarr;&nbsp; ".join(parts))

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
