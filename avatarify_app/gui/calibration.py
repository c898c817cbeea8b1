"""Calibration for ``MainWindow``: countdown, calibrate/auto-calibrate, and the per-portrait
reference saved to and restored from the ``avatars`` store (one per camera orientation).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from avatarify_app.gui import avatars as store


class CalibrationMixin:
    """Calibration of ``MainWindow`` (uses its widgets and state)."""

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

