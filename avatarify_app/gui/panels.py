"""The controls dock: one group box per concern, widgets only.

The panels build and lay out their widgets; the window connects them to its slots and
keeps them as its own attributes (``window.calibrate_button`` and so on).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
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
    QSlider,
    QVBoxLayout,
    QWidget,
)

from avatarify_app.engines.registry import REGISTRY

ZOOM_RANGE = (0.5, 2.0)
HALF_OFF_TIP = "Half precision is for the FOMM engine running on a CUDA GPU; it does not run on one now."


def labelled_slider(minimum: int, maximum: int, value: int, tip: str) -> QSlider:
    s = QSlider(Qt.Orientation.Horizontal)
    s.setRange(minimum, maximum)
    s.setValue(value)
    s.setToolTip(tip)
    s.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    return s


class CameraPanel(QGroupBox):
    """The driving source: a camera (or video file) picker and a video file button."""

    def __init__(self) -> None:
        super().__init__("Camera")
        form = QVBoxLayout(self)
        self.camera_combo = QComboBox()
        self.camera_combo.setToolTip("The camera (or video file) that drives the avatar.")
        self.camera_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.camera_combo.setMinimumContentsLength(14)
        self.video_button = QPushButton("Video file...")
        row = QHBoxLayout()
        row.addWidget(self.camera_combo, 1)
        row.addWidget(self.video_button)
        form.addLayout(row)


class CalibrationPanel(QGroupBox):
    """Pose match meter, calibrate buttons, the calibration state and the overlay controls."""

    def __init__(self) -> None:
        super().__init__("Calibrate")
        form = QVBoxLayout(self)
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
        self.auto_button = QPushButton("Auto (F)")
        self.auto_button.setToolTip("Pick the frame that best matches the portrait over the next second.")
        row.addWidget(self.calibrate_button)
        row.addWidget(self.auto_button)
        form.addLayout(row)
        self.calibration_label = QLabel("Not calibrated")
        self.calibration_label.setWordWrap(True)
        form.addWidget(self.calibration_label)
        flay = QFormLayout()
        self.overlay_slider = labelled_slider(0, 100, 35, "Opacity of the portrait drawn over the camera.")
        flay.addRow("Avatar overlay", self.overlay_slider)
        form.addLayout(flay)
        self.landmarks_check = QCheckBox("Show landmarks (L)")
        self.full_frame_check = QCheckBox("Show the full camera frame")
        form.addWidget(self.landmarks_check)
        form.addWidget(self.full_frame_check)


class FramingPanel(QGroupBox):
    """Zoom and offset of the face crop, and the live motion options."""

    def __init__(self) -> None:
        super().__init__("Framing and motion")
        form = QFormLayout(self)
        self.zoom_slider = labelled_slider(int(ZOOM_RANGE[0] * 100), int(ZOOM_RANGE[1] * 100), 100,
                                           "Zoom into the face (W / S).")
        self.offset_x_slider = labelled_slider(-50, 50, 0, "Move the crop left/right (arrow keys).")
        self.offset_y_slider = labelled_slider(-50, 50, 0, "Move the crop up/down (arrow keys).")
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
        for c in self.option_checks():
            form.addRow(c)

    def sliders(self) -> tuple[QSlider, QSlider, QSlider]:
        return self.zoom_slider, self.offset_x_slider, self.offset_y_slider

    def option_checks(self) -> tuple[QCheckBox, QCheckBox, QCheckBox, QCheckBox]:
        return self.mirror_check, self.passthrough_check, self.relative_check, self.adapt_check


class EnginePanel(QGroupBox):
    """Engine picker, checkpoint loading, half precision and the device in use."""

    def __init__(self) -> None:
        super().__init__("Engine")
        form = QFormLayout(self)
        self.engine_combo = QComboBox()
        for spec in REGISTRY.specs():
            key, label = spec.name, spec.display_name
            self.engine_combo.addItem(label, key)
        form.addRow("Engine", self.engine_combo)
        self.checkpoint_button = QPushButton("Load checkpoint...")
        self.checkpoint_button.setToolTip("A FOMM checkpoint such as vox-adv-cpk.pth.tar.")
        form.addRow(self.checkpoint_button)
        self.checkpoint_label = QLabel("")
        self.checkpoint_label.setWordWrap(True)
        form.addRow(self.checkpoint_label)
        self.half_check = QCheckBox("Half precision (GPU)")
        self.half_check.setEnabled(False)
        self.half_check.setToolTip(HALF_OFF_TIP)
        form.addRow(self.half_check)
        self.device_label = QLabel("device: -")
        form.addRow(self.device_label)


class OutputPanel(QGroupBox):
    """Virtual camera switch and state, its setup help, and recording to a file."""

    def __init__(self, vcam_allowed: bool) -> None:
        super().__init__("Output")
        form = QVBoxLayout(self)
        self.vcam_check = QCheckBox("Virtual camera")
        self.vcam_check.setToolTip("Send the avatar to a virtual camera that video-call apps can pick.")
        self.vcam_check.setEnabled(vcam_allowed)
        self.vcam_status = QLabel("off" if vcam_allowed else "disabled (--no-vcam)")
        self.vcam_status.setWordWrap(True)
        self.vcam_help_button = QPushButton("How to set up the virtual camera...")
        self.record_button = QPushButton("Record to file...")
        form.addWidget(self.vcam_check)
        form.addWidget(self.vcam_status)
        form.addWidget(self.vcam_help_button)
        form.addWidget(self.record_button)


def add_controls_dock(window: QMainWindow, boxes: list[QGroupBox]) -> QDockWidget:
    """Stack ``boxes`` in a scrollable column docked on the right of ``window``."""
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
    dock = QDockWidget("Controls", window)
    dock.setObjectName("controls_dock")
    dock.setWidget(scroll)
    dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    return dock
