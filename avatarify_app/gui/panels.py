"""The controls: one widget per concern, each drawing from the view-model and asking for changes
through its own signals (the window connects them to the controllers).

A panel reads ``state`` (``state.AppState``) and redraws on its change signals; it never reads
another panel or a controller. The view options (overlay, landmarks, full frame) are the one
thing a panel writes to ``state`` itself: they only change how the views draw.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDockWidget,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from avatarify_app.gui.controller import OFFSET_LIMIT, ZOOM_RANGE
from avatarify_app.gui.sources import source_label
from avatarify_app.gui.state import AppState, Calibration, OutputsView

METER_GOOD = 80  # pose match (%) from which the meter is green
METER_FAIR = 60  # ... yellow; below it red, with the hint which way to move


def labelled_slider(minimum: int, maximum: int, value: int, tip: str) -> QSlider:
    s = QSlider(Qt.Orientation.Horizontal)
    s.setRange(minimum, maximum)
    s.setValue(value)
    s.setToolTip(tip)
    s.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    return s


def set_quietly(widget: Any, setter: str, value: Any) -> None:
    """Set a widget's value without emitting its change signal (drawing the model, not a user edit)."""
    widget.blockSignals(True)
    getattr(widget, setter)(value)
    widget.blockSignals(False)


class CameraPanel(QGroupBox):
    """The driving source: a camera (or video file) picker and a video file button."""

    source_picked = Signal(str)  # spec
    video_requested = Signal()

    def __init__(self, state: AppState) -> None:
        super().__init__("Camera")
        form = QVBoxLayout(self)
        self.camera_combo = QComboBox()
        self.camera_combo.setToolTip("The camera (or video file) that drives the avatar.")
        self.camera_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.camera_combo.setMinimumContentsLength(14)
        self.video_button = QPushButton("Video file...")
        self.video_button.setToolTip("Drive the avatar with a video instead of a camera.")
        row = QHBoxLayout()
        row.addWidget(self.camera_combo, 1)
        row.addWidget(self.video_button)
        form.addLayout(row)
        self.camera_combo.activated.connect(self._on_activated)
        self.video_button.clicked.connect(self.video_requested)
        state.source_changed.connect(self._show_source)

    def add_source(self, spec: str, label: str = "") -> None:
        """Offer ``spec`` (a new ``label`` renames it; "" keeps the one shown or a default)."""
        for i in range(self.camera_combo.count()):
            if self.camera_combo.itemData(i) == spec:
                if label:
                    self.camera_combo.setItemText(i, label)
                return
        self.camera_combo.addItem(label or source_label(spec), spec)

    def sources(self) -> list[str]:
        return [self.camera_combo.itemData(i) for i in range(self.camera_combo.count())]

    def _show_source(self, spec: str | None) -> None:
        if spec is None:
            return
        self.add_source(spec)
        set_quietly(self.camera_combo, "setCurrentIndex", self.camera_combo.findData(spec))

    def _on_activated(self, index: int) -> None:
        spec = self.camera_combo.itemData(index)
        if spec:
            self.source_picked.emit(spec)


class CalibrationPanel(QGroupBox):
    """Pose match meter (with the hint which way to move), calibrate buttons with the countdown,
    the calibration state, and the overlay and landmark switches."""

    calibrate_requested = Signal()  # the countdown ended: take the reference now
    auto_requested = Signal()
    countdown = Signal(str)  # "3", "2", "1", then "" (shown over the camera)

    def __init__(self, state: AppState) -> None:
        super().__init__("Calibrate")
        self.state = state
        self.countdown_step_ms = 1000
        self._countdown_left = 0
        self._meter_color = ""
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._tick)

        form = QVBoxLayout(self)
        hint = QLabel("Copy the portrait's pose and expression (raise the overlay to compare), "
                      "then press Calibrate.")
        hint.setWordWrap(True)
        form.addWidget(hint)
        self.pose_meter = QProgressBar()
        self.pose_meter.setRange(0, 100)
        self.pose_meter.setValue(0)
        self.pose_meter.setFormat("pose match: %p%")
        self.pose_meter.setToolTip("How well your face matches the portrait's pose. Aim for green.")
        form.addWidget(self.pose_meter)
        self.hint_label = QLabel("")
        self.hint_label.setWordWrap(True)
        self.hint_label.setToolTip("Which way to move to match the portrait's pose.")
        self.hint_label.setStyleSheet("color: #d44; font-weight: bold;")
        self.hint_label.setVisible(False)
        form.addWidget(self.hint_label)
        row = QHBoxLayout()
        self.calibrate_button = QPushButton("Calibrate (X)")
        self.calibrate_button.setToolTip("3-2-1 countdown, then your current face becomes the reference.")
        self.auto_button = QPushButton("Auto (F)")
        self.auto_button.setToolTip("Pick the frame that best matches the portrait over the next second.")
        row.addWidget(self.calibrate_button)
        row.addWidget(self.auto_button)
        form.addLayout(row)
        self.calibration_label = QLabel(state.calibration.text)
        self.calibration_label.setWordWrap(True)
        form.addWidget(self.calibration_label)
        flay = QFormLayout()
        self.overlay_slider = labelled_slider(0, 100, round(100 * state.view.overlay_opacity),
                                              "Opacity of the portrait drawn over the camera.")
        flay.addRow("Avatar overlay", self.overlay_slider)
        form.addLayout(flay)
        self.landmarks_check = QCheckBox("Show landmarks (L)")
        self.full_frame_check = QCheckBox("Show the full camera frame")
        form.addWidget(self.landmarks_check)
        form.addWidget(self.full_frame_check)

        self.calibrate_button.clicked.connect(self.start_countdown)
        self.auto_button.clicked.connect(self.auto_requested)
        self.overlay_slider.valueChanged.connect(lambda v: self._set_view(overlay_opacity=v / 100))
        self.landmarks_check.toggled.connect(lambda on: self._set_view(show_landmarks=on))
        self.full_frame_check.toggled.connect(lambda on: self._set_view(full_frame=on))
        state.calibration_changed.connect(self._show_calibration)
        state.view_changed.connect(self._show_view)
        self._show_view(state.view)

    def _set_view(self, **changes: Any) -> None:
        self.state.view = dataclasses.replace(self.state.view, **changes)

    def _show_view(self, view: Any) -> None:
        set_quietly(self.overlay_slider, "setValue", round(100 * view.overlay_opacity))
        set_quietly(self.landmarks_check, "setChecked", view.show_landmarks)
        set_quietly(self.full_frame_check, "setChecked", view.full_frame)

    def _show_calibration(self, calibration: Calibration) -> None:
        self.calibration_label.setText(calibration.text)

    # -- countdown ------------------------------------------------------------------
    @property
    def counting(self) -> bool:
        return self._countdown_left > 0

    def start_countdown(self) -> None:
        self._countdown_left = 3
        self.countdown.emit("3")
        self.calibrate_button.setEnabled(False)
        self._timer.start(self.countdown_step_ms)

    def stop_countdown(self) -> None:
        self._timer.stop()
        self._countdown_left = 0
        self.calibrate_button.setEnabled(True)

    def _tick(self) -> None:
        self._countdown_left -= 1
        if self._countdown_left > 0:
            self.countdown.emit(str(self._countdown_left))
            return
        self.stop_countdown()
        self.countdown.emit("")
        self.calibrate_requested.emit()

    # -- live meter ------------------------------------------------------------------
    def show_frame(self, event: Any) -> None:
        """The pose match of this frame and, when it is low, which way to move."""
        match = event.pose_match
        if match is None:
            return
        value = round(100 * float(match))
        self.pose_meter.setValue(value)
        color = "#3c3" if value >= METER_GOOD else "#db3" if value >= METER_FAIR else "#d44"
        if color != self._meter_color:  # restyling is costly: only when the colour changes
            self._meter_color = color
            self.pose_meter.setStyleSheet(f"QProgressBar::chunk {{ background: {color}; }}")
        hint = getattr(event, "pose_hint", None) if value < METER_GOOD else None
        text = f"Move: {hint}" if hint else ""
        if text != self.hint_label.text():
            self.hint_label.setText(text)
            self.hint_label.setVisible(bool(text))


class FramingPanel(QGroupBox):
    """Zoom and offset of the face crop, and the live motion switches."""

    framing_requested = Signal(float, float, float)  # zoom, dx, dy
    reset_requested = Signal()
    toggles_requested = Signal(dict)  # mirror / passthrough / relative / adapt_scale -> bool

    def __init__(self, state: AppState) -> None:
        super().__init__("Framing and motion")
        form = QFormLayout(self)
        self.zoom_slider = labelled_slider(int(ZOOM_RANGE[0] * 100), int(ZOOM_RANGE[1] * 100), 100,
                                           "Zoom into the face (W / S).")
        limit = int(OFFSET_LIMIT * 100)
        self.offset_x_slider = labelled_slider(-limit, limit, 0, "Move the crop left/right (arrow keys).")
        self.offset_y_slider = labelled_slider(-limit, limit, 0, "Move the crop up/down (arrow keys).")
        form.addRow("Zoom", self.zoom_slider)
        form.addRow("Left/right", self.offset_x_slider)
        form.addRow("Up/down", self.offset_y_slider)
        self.reset_button = QPushButton("Reset framing")
        form.addRow("", self.reset_button)
        self.mirror_check = QCheckBox("Mirror camera (R)")
        self.passthrough_check = QCheckBox("Passthrough: send the camera (P)")
        self.relative_check = QCheckBox("Relative motion")
        self.relative_check.setToolTip("On: move the portrait by how much you moved since calibrating.\n"
                                       "Off: copy your absolute pose (needs similar face shapes).")
        self.adapt_check = QCheckBox("Adapt movement scale")
        self.adapt_check.setToolTip("Scale your motion to the portrait's face size.")
        self._checks = {"mirror": self.mirror_check, "passthrough": self.passthrough_check,
                        "relative": self.relative_check, "adapt_scale": self.adapt_check}
        for c in self._checks.values():
            form.addRow(c)
        for s in self.sliders():
            s.valueChanged.connect(self._on_slider)
        self.reset_button.clicked.connect(self.reset_requested)
        for key, check in self._checks.items():
            check.toggled.connect(lambda on, key=key: self.toggles_requested.emit({key: on}))
        state.options_changed.connect(self._show_options)
        self._show_options(state.options)

    def sliders(self) -> tuple[QSlider, QSlider, QSlider]:
        return self.zoom_slider, self.offset_x_slider, self.offset_y_slider

    def _on_slider(self, _value: int) -> None:
        z, x, y = (s.value() / 100 for s in self.sliders())
        self.framing_requested.emit(z, x, y)

    def _show_options(self, options: Any) -> None:
        crop = options.crop
        for slider, value in zip(self.sliders(), (crop.zoom, crop.offset_x, crop.offset_y), strict=True):
            set_quietly(slider, "setValue", round(value * 100))
        values = {"mirror": options.mirror, "passthrough": options.passthrough,
                  "relative": options.motion.relative, "adapt_scale": options.motion.adapt_scale}
        for key, check in self._checks.items():
            set_quietly(check, "setChecked", values[key])


class OutputBar(QToolBar):
    """The output switches, always in sight at the top of the window: the virtual camera (with
    its state and setup help) and recording to a file."""

    vcam_toggled = Signal(bool)
    help_requested = Signal()
    record_requested = Signal()  # start (asks for a file) or stop

    def __init__(self, state: AppState) -> None:
        super().__init__("Outputs")
        self.setObjectName("outputs_toolbar")
        self.setMovable(False)
        self.setFloatable(False)
        self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.vcam_check = QCheckBox("Virtual camera")
        self.vcam_check.setToolTip("Send the avatar to a virtual camera that video-call apps can pick.")
        self.vcam_status = QLabel()
        self.vcam_status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.vcam_status.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.vcam_help_button = QPushButton("How to set up...")
        self.vcam_help_button.setToolTip("How to install the virtual camera on this system.")
        self.record_button = QPushButton("Record to file...")
        self.record_button.setToolTip("Record the avatar to a video file (Ctrl+R).")
        title = QLabel("Output:")
        title.setStyleSheet("font-weight: bold; margin: 0 6px;")
        for w in (title, self.vcam_check, self.vcam_status, self.vcam_help_button):
            self.addWidget(w)
        self.addSeparator()
        self.addWidget(self.record_button)
        self.vcam_check.toggled.connect(self.vcam_toggled)
        self.vcam_help_button.clicked.connect(self.help_requested)
        self.record_button.clicked.connect(self.record_requested)
        state.outputs_changed.connect(self._show)
        self._show(state.outputs)

    def _show(self, outputs: OutputsView) -> None:
        self.vcam_check.setEnabled(outputs.vcam_allowed)
        set_quietly(self.vcam_check, "setChecked", outputs.vcam_on)
        self.vcam_status.setText(outputs.vcam_text)
        self.vcam_status.setToolTip(outputs.vcam_text)
        if outputs.recording is not None:
            self.record_button.setText("Stop recording")
            self.record_button.setToolTip(f"Recording to {outputs.recording}")
        else:
            self.record_button.setText("Record to file...")
            self.record_button.setToolTip("Record the avatar to a video file (Ctrl+R).")


CONTROL_TABS = ("Live", "Framing", "Engine")


def _scroll_page(boxes: list[QWidget]) -> QScrollArea:
    panel = QWidget()
    col = QVBoxLayout(panel)
    for box in boxes:
        col.addWidget(box)
    col.addStretch(1)
    scroll = QScrollArea()
    scroll.setWidget(panel)
    scroll.setWidgetResizable(True)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    scroll.setMinimumWidth(max(340, panel.sizeHint().width() + scroll.verticalScrollBar().sizeHint().width() + 8))
    return scroll


def controls_dock(window: QMainWindow, pages: list[tuple[str, list[QWidget]]]) -> tuple[QDockWidget, QTabWidget]:
    """One tab per page (each a scrollable column of ``boxes``), docked on the right of
    ``window``: the engine's own controls get a whole page instead of the bottom of one column."""
    tabs = QTabWidget()
    tabs.setObjectName("controls_tabs")
    for title, boxes in pages:
        tabs.addTab(_scroll_page(boxes), title)
    dock = QDockWidget("Controls", window)
    dock.setObjectName("controls_dock")
    dock.setWidget(tabs)
    dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    return dock, tabs
