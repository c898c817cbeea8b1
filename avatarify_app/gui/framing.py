"""Live options for ``MainWindow``: mirror/passthrough/motion toggles, the face crop's framing
(remembered per portrait), the overlay opacity and the landmarks switch.
"""

from __future__ import annotations

import dataclasses

from avatarify_app.config import LiveOptions, MotionOptions
from avatarify_app.gui import avatars as store
from avatarify_app.gui.panels import ZOOM_RANGE

ZOOM_STEP = 0.05
NUDGE_STEP = 0.02
OFFSET_LIMIT = 0.5


class FramingMixin:
    """Options and framing of ``MainWindow`` (uses its widgets and state)."""

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

