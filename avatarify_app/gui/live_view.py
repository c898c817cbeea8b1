"""The centre of the window: the step guide, the camera (tracked crop) beside the avatar.

``LiveView`` paints each ``FrameEvent`` (the camera view with the face box, landmarks and the
avatar overlay; the avatar view with a status badge) and follows the view-model for the
guide and the view options. It keeps the last event so a view option can repaint at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSplitter, QVBoxLayout, QWidget

from avatarify_app.gui.frame_view import FrameView
from avatarify_app.gui.guide import guide_html
from avatarify_app.gui.state import AppState

BADGES = {"no_face": "no face: look into the camera", "calibrating": "calibrating...",
          "passthrough": "passthrough (camera sent as is)", "no_engine": "no engine running",
          "error": "engine error (see message)"}


class LiveView(QWidget):
    """Guide, camera view and avatar view (see the module docstring)."""

    video_requested = Signal()  # the "Open a video file" button (shown when no source works)

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self._last_event: Any = None
        self._overlay_avatar: np.ndarray | None = None  # the session's avatar crop now on the overlay
        self._countdown = ""

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
        self.open_video_button.clicked.connect(self.video_requested)
        self.open_video_button.setVisible(False)
        guide_row = QHBoxLayout()
        guide_row.addWidget(self.guide, 1)
        guide_row.addWidget(self.open_video_button)

        views = QSplitter(Qt.Orientation.Horizontal)
        views.addWidget(self.camera_view)
        views.addWidget(self.avatar_view)
        views.setChildrenCollapsible(False)

        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        col.addLayout(guide_row)
        col.addWidget(views, 1)

        for signal in (state.source_changed, state.avatar_changed, state.calibration_changed,
                       state.outputs_changed):
            signal.connect(lambda _value: self._update_guide())
        state.source_changed.connect(self._on_source)
        state.view_changed.connect(self._on_view)
        self.camera_view.set_overlay_opacity(state.view.overlay_opacity)
        self._update_guide()

    @property
    def last_event(self) -> Any:
        """The last frame event painted (None before the first)."""
        return self._last_event

    @property
    def overlay_avatar(self) -> np.ndarray | None:
        """The avatar crop drawn over the camera crop now (None in full-frame view)."""
        return self._overlay_avatar

    # -- what the controllers say ----------------------------------------------------------
    def _update_guide(self) -> None:
        s = self.state
        self.guide.setText(guide_html(s.source, s.avatar is not None,
                                      s.avatar is not None and s.calibration.calibrated,
                                      s.outputs.vcam_on and s.outputs.vcam_text.startswith("on")))

    def _on_source(self, spec: str | None) -> None:
        if spec is not None:
            self.open_video_button.setVisible(False)
            self.camera_view.set_message("Opening...")

    def show_problem(self, text: str) -> None:
        """No usable source: say why on the camera view and offer a video file."""
        self.camera_view.set_message(text)
        self.open_video_button.setVisible(True)

    def show_message(self, text: str) -> None:
        self.camera_view.set_message(text)

    def show_countdown(self, text: str) -> None:
        self._countdown = text
        self.camera_view.set_message(text)

    def _on_view(self, view: Any) -> None:
        self.camera_view.set_overlay_opacity(view.overlay_opacity)
        if self._last_event is not None:
            self._paint_camera(self._last_event)

    # -- frames ---------------------------------------------------------------------------------
    def show_frame(self, event: Any) -> None:
        self._last_event = event
        self._paint_camera(event)
        if event.status == "no_avatar":
            self.avatar_view.set_message("Pick a portrait below")
        elif event.output is not None:
            self.avatar_view.set_message("")
            self.avatar_view.set_frame(event.output)
        self.avatar_view.set_badge(BADGES.get(event.status, ""))
        self.camera_view.set_badge("no face" if event.status == "no_face" else "")

    def _paint_camera(self, event: Any) -> None:
        view = self.camera_view
        if not self._countdown and view.message():
            view.set_message("")
        show_landmarks = self.state.view.show_landmarks
        box = event.box
        if self.state.view.full_frame or event.crop is None:
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
