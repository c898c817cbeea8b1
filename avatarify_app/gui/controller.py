"""The session controller: the one place the window changes the live session.

``SessionController`` builds and owns the ``pipeline.Session`` (through a ``SessionBridge``
that brings its worker-thread callbacks to the GUI thread as signals) and carries out what
the panels ask for: the driving source, the portrait, the live options and the face crop's
framing (remembered per portrait), and calibration (saved per portrait and camera
orientation). It writes the matching fields of the view-model (``state.AppState``) and the
settings keys it owns (source/, avatar/, live/ except the view's); engines and outputs have
their own controllers (``engine_control``, ``outputs``) that use ``session`` the same way.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from avatarify_app import pipeline
from avatarify_app.config import LiveOptions, MotionOptions, TrackingConfig
from avatarify_app.errors import AvatarifyError
from avatarify_app.gui.bridge import SessionBridge
from avatarify_app.gui.notices import Notices
from avatarify_app.gui.settings import AppSettings
from avatarify_app.gui.state import AppState, Calibration
from avatarify_app.pipeline import avatar_store as store

log = logging.getLogger(__name__)

ZOOM_RANGE = (0.5, 2.0)
OFFSET_LIMIT = 0.5
ZOOM_STEP = 0.05
NUDGE_STEP = 0.02


def is_file_spec(spec: str) -> bool:
    """A video or image file (not a camera index, device or stream URL)."""
    return not (spec.isdigit() or spec.startswith("/dev/video") or "://" in spec)


def existing_file(spec: str | Path) -> bool:
    """Whether ``spec`` names a file that exists (False for names the system refuses: too long, NUL)."""
    try:
        return Path(spec).is_file()
    except (OSError, ValueError):
        return False


def checked_framing(framing: tuple[float, float, float] | None, name: str) -> tuple[float, float, float]:
    """A portrait's saved (zoom, dx, dy) if it is finite and in range, else the default framing."""
    if framing is None:
        return 1.0, 0.0, 0.0
    zoom, dx, dy = framing
    if all(math.isfinite(v) for v in framing) and ZOOM_RANGE[0] <= zoom <= ZOOM_RANGE[1] \
            and abs(dx) <= OFFSET_LIMIT and abs(dy) <= OFFSET_LIMIT:
        return zoom, dx, dy
    log.warning("ignoring the saved framing of %s (%s): out of range; using the default", name, framing)
    return 1.0, 0.0, 0.0


class SessionController(QObject):
    """Owns the session; the panels' requests become session calls here (see the module docstring)."""

    source_problem = Signal(str)  # the camera/file cannot be used: what to tell the user (camera view)
    source_opening = Signal(str)  # a source was accepted (spec); its first frames are on their way

    def __init__(self, state: AppState, settings: AppSettings, notices: Notices, *,
                 session_factory: Callable[..., Any] | None = None, loop_video: bool = True,
                 mirror: bool | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.settings = settings
        self.notices = notices
        self.bridge = SessionBridge(self)
        self.loop_video = loop_video
        self._session_factory = session_factory or pipeline.Session
        self._calibration_request: int | None = None  # the request whose reference we save
        self._notes_shown: tuple[str, ...] | None = None  # the portrait notes last told
        state.options = LiveOptions(
            mirror=settings.get_bool("live/mirror") if mirror is None else mirror,
            passthrough=settings.get_bool("live/passthrough"),
            motion=MotionOptions(relative=settings.get_bool("live/relative"),
                                 adapt_scale=settings.get_bool("live/adapt_scale")),
        )
        self.bridge.reference.connect(self._on_reference)
        self.bridge.error.connect(self._on_error)
        self.bridge.stats.connect(self._show_avatar_notes)
        state.view_changed.connect(lambda _view: self._push_options())

    @property
    def session(self) -> Any:
        return self.bridge.session

    # ----------------------------------------------------------------- session
    def start_session(self, source: Any = None) -> None:
        """Build and start the session (``source`` may be None until the user picks one)."""
        state = self.state
        session = self._session_factory(source, engine_config=state.engine, options=self.live_options(),
                                        tracking=TrackingConfig(crop=state.options.crop))
        self.bridge.attach(session)
        if state.avatar is not None:
            self._apply_avatar_to_session(state.avatar)
        session.start()

    def shutdown(self) -> None:
        self.bridge.shutdown()

    def live_options(self) -> LiveOptions:
        """The options to send: the debug arrays are asked for only while the debug view shows."""
        return dataclasses.replace(self.state.options, debug=self.state.view.debug)

    def _push_options(self) -> None:
        if self.session is not None and self.session.options != self.live_options():
            self.session.update_options(self.live_options())

    # ----------------------------------------------------------------- source
    def open_source(self, spec: str, user_chose: bool = True) -> bool:
        """Drive the avatar from ``spec`` (camera index/path or file); builds the session once."""
        spec = str(spec)
        try:
            source = pipeline.open_source(spec, loop=self.loop_video and is_file_spec(spec))
        except AvatarifyError as err:
            self.source_problem.emit(f"{err.message}\n{err.hint}")
            if user_chose:
                self.notices.warn("Cannot open the camera or file", str(err))
            return False
        self.state.source = spec
        self.settings.set("source/camera", spec)
        self.source_opening.emit(spec)
        if self.session is None:
            self.start_session(source)
        else:
            self.session.set_source(source)
        return True

    # ----------------------------------------------------------------- avatar
    def set_avatar(self, path: Path | str) -> None:
        """Animate this portrait; restores its framing and calibration if it has them."""
        path = Path(path)
        self.state.avatar = path
        self.settings.set("avatar/path", str(path))
        self.set_framing(*checked_framing(store.load_framing(path), path.name), save=False)
        if self.session is not None:
            self._apply_avatar_to_session(path)
        else:
            self._show_calibration(path, restored=False)

    def _apply_avatar_to_session(self, path: Path) -> None:
        session = self.session
        session.set_avatar(str(path))
        session.update_options(self.live_options())
        self.restore_calibration(path)

    def _show_avatar_notes(self, _stats: Any = None) -> None:
        """Say once per portrait what the session noticed about it (``Session.avatar_notes``:
        scaled down, transparency flattened, which of several faces, blurry)."""
        notes = getattr(self.session, "avatar_notes", ()) if self.session is not None else ()
        if notes and notes is not self._notes_shown:
            self._notes_shown = notes
            self.notices.tell(" ".join(notes), 15000)

    # ----------------------------------------------------------------- options and framing
    def set_toggles(self, *, mirror: bool | None = None, passthrough: bool | None = None,
                    relative: bool | None = None, adapt_scale: bool | None = None) -> None:
        """Change the live switches (None keeps one as it is)."""
        old = self.state.options
        motion = MotionOptions(relative=old.motion.relative if relative is None else relative,
                               adapt_scale=old.motion.adapt_scale if adapt_scale is None else adapt_scale)
        new = dataclasses.replace(old, mirror=old.mirror if mirror is None else mirror,
                                  passthrough=old.passthrough if passthrough is None else passthrough,
                                  motion=motion)
        if new == old:
            return
        self.state.options = new
        s = self.settings
        s.set("live/mirror", new.mirror)
        s.set("live/passthrough", new.passthrough)
        s.set("live/relative", new.motion.relative)
        s.set("live/adapt_scale", new.motion.adapt_scale)
        self._push_options()
        if new.mirror != old.mirror and self.session is not None and self.state.avatar is not None:
            # The session dropped its reference (the picture flipped): bring back the one saved
            # for this orientation, or say that this orientation needs its own calibration.
            self.restore_calibration(self.state.avatar)

    def toggle_mirror(self) -> None:
        self.set_toggles(mirror=not self.state.options.mirror)

    def toggle_passthrough(self) -> None:
        self.set_toggles(passthrough=not self.state.options.passthrough)

    def framing(self) -> tuple[float, float, float]:
        crop = self.state.options.crop
        return crop.zoom, crop.offset_x, crop.offset_y

    def set_framing(self, zoom: float, dx: float, dy: float, save: bool = True) -> None:
        """Zoom and offset of the face crop (saved for the portrait unless ``save`` is False)."""
        zoom = min(max(zoom, ZOOM_RANGE[0]), ZOOM_RANGE[1])
        dx = min(max(dx, -OFFSET_LIMIT), OFFSET_LIMIT)
        dy = min(max(dy, -OFFSET_LIMIT), OFFSET_LIMIT)
        options = self.state.options
        crop = dataclasses.replace(options.crop, zoom=zoom, offset_x=dx, offset_y=dy)
        self.state.options = dataclasses.replace(options, crop=crop)
        if save and self.state.avatar is not None:
            store.save_framing(self.state.avatar, zoom, dx, dy)
        self._push_options()

    def nudge(self, zoom: float = 0.0, dx: float = 0.0, dy: float = 0.0) -> None:
        z, x, y = self.framing()
        self.set_framing(round(z + zoom, 4), round(x + dx, 4), round(y + dy, 4))

    def reset_framing(self) -> None:
        self.set_framing(1.0, 0.0, 0.0)

    # ----------------------------------------------------------------- calibration
    def restore_calibration(self, path: Path) -> bool:
        """Give the session the reference saved for ``path`` and the current mirror setting.

        Call it after ``update_options``: the session runs commands in order, so a mirror
        change (which clears the reference) is applied before the restored one.
        """
        self._calibration_request = None
        calibration = store.load_calibration(path, mirror=self.state.options.mirror)
        if calibration is not None and self.session is not None:
            self.session.set_reference(*calibration)
        self._show_calibration(path, restored=calibration is not None)
        return calibration is not None

    def _show_calibration(self, path: Path, restored: bool) -> None:
        mirror = self.state.options.mirror
        if restored:
            text = "Calibration restored for this portrait" + (" (mirrored camera)" if mirror else "")
        elif mirror and store.load_calibration(path, mirror=False) is not None:
            text = "Calibrated with the camera not mirrored: press Calibrate (X) for the mirrored camera"
        elif not mirror and store.load_calibration(path, mirror=True) is not None:
            text = "Calibrated with the camera mirrored: press Calibrate (X) for the camera as is"
        else:
            text = "Not calibrated for this portrait yet: press Calibrate (X)"
        self.state.calibration = Calibration(text, calibrated=restored)

    def calibrate_now(self) -> bool:
        """The next frame with a face becomes the reference (saved for this portrait)."""
        if self.session is None:
            self.notices.warn("Nothing to calibrate", "Open a camera or a video file first.")
            return False
        self._calibration_request = self.session.recalibrate()
        self.state.calibration = Calibration("Calibrating: hold still...", calibrated=False)
        return True

    def auto_calibrate(self) -> bool:
        if self.session is None:
            self.notices.warn("Nothing to calibrate", "Open a camera or a video file first.")
            return False
        self._calibration_request = self.session.auto_calibrate()
        self.state.calibration = Calibration("Auto-calibrating: looking for your best match...",
                                             calibrated=self.state.calibration.calibrated)
        return True

    def _on_reference(self, event: Any) -> None:
        """The session's reference changed: save it when it answers our calibrate request."""
        request = self._calibration_request
        if request is None or event.request != request or event.crop is None:
            return
        self._calibration_request = None
        avatar = self.state.avatar
        if avatar is None:
            return
        store.save_calibration(avatar, event.crop, event.landmarks, mirror=event.mirror)
        match = f" (pose match {round(100 * event.pose_match)}%)" if event.pose_match is not None else ""
        self.state.calibration = Calibration(f"Calibrated{match}: saved for this portrait"
                                             + (" (mirrored camera)" if event.mirror else ""), calibrated=True)
        self.notices.tell("Calibrated", 3000)

    # ----------------------------------------------------------------- errors
    def _on_error(self, event: Any) -> None:
        stage, message = event.stage, event.message
        if stage == "source":
            self.source_problem.emit(f"{message}\n\nChoose another camera or open a video file.")
            self.notices.tell(message, 10000)
        elif stage == "tracking":
            self.notices.tell(message, 5000)
        elif stage == "avatar":
            self.notices.warn("Cannot use this portrait", message)
        elif stage == "calibration":  # e.g. an auto-calibration below the pose match it needs
            if event.request is not None and event.request == self._calibration_request:
                self._calibration_request = None
            self.state.calibration = Calibration(message, calibrated=self.state.calibration.calibrated)
            self.notices.tell(message.splitlines()[0], 10000)
        elif stage not in ("engine", "sink"):  # those have their own controllers
            self.notices.warn("Problem", message)
