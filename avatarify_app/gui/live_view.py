"""What the session reports, shown by ``MainWindow``: frames on the two views, the pose
meter and the debug view, stats in the status bar, and errors as dialogs or messages.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from avatarify_app import pipeline

log = logging.getLogger(__name__)


class LiveViewMixin:
    """The session's frames, stats and errors on ``MainWindow`` (uses its widgets and state)."""

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
        self.show_avatar_notes()

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

