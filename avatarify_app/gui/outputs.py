"""Outputs for ``MainWindow``: the virtual camera (with its setup help) and recording to a file."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QFileDialog, QMessageBox

from avatarify_app import pipeline
from avatarify_app.errors import AvatarifyError
from avatarify_app.frames import IMAGE_SUFFIXES

log = logging.getLogger(__name__)


class OutputsMixin:
    """Virtual camera and recorder sinks of ``MainWindow`` (uses its widgets and state)."""

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

