"""The outputs controller: the virtual camera and recording to a file.

It owns the two sinks it adds to the session, writes ``state.outputs`` (what the output
switches show) and the ``output/`` settings. A recording never replaces an existing file
unless the caller says the user agreed (``overwrite=True``; the window asks).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject

from avatarify_app import pipeline
from avatarify_app.config import VirtualCameraConfig
from avatarify_app.errors import AvatarifyError, VirtualCameraUnavailable
from avatarify_app.frames import IMAGE_SUFFIXES
from avatarify_app.gui.controller import SessionController, is_file_spec
from avatarify_app.gui.notices import Notices
from avatarify_app.gui.settings import AppSettings
from avatarify_app.gui.state import AppState, OutputsView
from avatarify_app.gui.tasks import Tasks

log = logging.getLogger(__name__)


def is_video_file(spec: str | None) -> bool:
    return spec is not None and is_file_spec(spec) and Path(spec).suffix.lower() not in IMAGE_SUFFIXES


class OutputsController(QObject):
    """The virtual camera and recorder sinks of the session (see the module docstring)."""

    def __init__(self, state: AppState, settings: AppSettings, notices: Notices, controller: SessionController,
                 tasks: Tasks, *, vcam_config: VirtualCameraConfig | None = None, vcam_allowed: bool = True,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.settings = settings
        self.notices = notices
        self.controller = controller
        self.tasks = tasks
        self.vcam_config = vcam_config or VirtualCameraConfig()
        self._vcam_sink: Any = None
        self._vcam_wanted = False
        self._recorder: Any = None
        self._recording_file = False  # recording one whole pass of a video file (lossless)
        self._last_fps = 0.0
        self._closed = False
        state.outputs = OutputsView(vcam_allowed=vcam_allowed,
                                vcam_text="off" if vcam_allowed else "disabled (--no-vcam)")
        controller.bridge.session_changed.connect(self._on_session)
        controller.bridge.stats.connect(self._on_stats)
        controller.bridge.error.connect(self._on_error)
        controller.source_opening.connect(lambda _spec: self.stop_recording(back_to_live=False))

    @property
    def recorder(self) -> Any:
        """The recorder sink while recording, else None."""
        return self._recorder

    @property
    def vcam_sink(self) -> Any:
        return self._vcam_sink

    def _show(self, **changes: Any) -> None:
        self.state.outputs = dataclasses.replace(self.state.outputs, **changes)

    # ----------------------------------------------------------------- virtual camera
    def restore(self) -> None:
        """Turn the virtual camera on if it was on when the app last closed."""
        if self.state.outputs.vcam_allowed and self.settings.get_bool("output/virtual_camera"):
            self.set_virtual_camera(True)

    def set_virtual_camera(self, on: bool) -> None:
        if not self.state.outputs.vcam_allowed:
            return
        self._vcam_wanted = on
        self.settings.set("output/virtual_camera", on)
        if not on:
            self._remove_vcam()
            self._show(vcam_on=False, vcam_text="off")
            return
        if self._vcam_sink is not None:
            return
        session = self.controller.session
        if session is None:
            self._show(vcam_on=True, vcam_text="starts with the camera")
            return  # added when the session starts (_on_session)
        try:
            sink = pipeline.VirtualCameraSink(self.vcam_config)
            session.add_sink(sink)
        except AvatarifyError as err:
            self._vcam_failed(err)
            return
        self._vcam_sink = sink
        self._show(vcam_on=True, vcam_text=f"on: {getattr(sink, 'name', 'virtual camera')}")

    def _on_session(self, session: Any) -> None:
        if session is not None and self._vcam_wanted and self._vcam_sink is None and not self._closed:
            self.set_virtual_camera(True)

    def _remove_vcam(self) -> None:
        sink, self._vcam_sink = self._vcam_sink, None
        if sink is None:
            return
        if self.controller.session is not None:
            self.controller.session.remove_sink(sink)
        sink.close()

    def _vcam_failed(self, err: BaseException) -> None:
        self._remove_vcam()
        self._vcam_wanted = False
        self.settings.set("output/virtual_camera", False)
        self._show(vcam_on=False, vcam_text="unavailable: see How to set up")
        self.notices.warn("Virtual camera unavailable", f"{err}\n\n{pipeline.virtual_camera_help()}")

    # ----------------------------------------------------------------- recording
    def start_recording(self, path: str | Path, overwrite: bool = False) -> bool:
        """Record what the sinks get; an existing file is replaced only with ``overwrite``.

        A camera (real time): in step with the capture clock (``sync=True``: frames the engine
        could not keep up with are repeated), so the file plays at real speed. A video file:
        one whole pass of it, every frame processed and written once at the file's own frame
        rate; the file is read from its start without pacing while recording, and the
        recording stops by itself at its end.
        """
        path = Path(path)
        session, spec = self.controller.session, self.state.source
        if session is None or spec is None:
            self.notices.warn("Nothing to record", "Open a camera or a video file first.")
            return False
        if self._recorder is not None:
            self.stop_recording()
        if path.exists() and not overwrite:
            self.notices.warn("Not recording", f"{path} exists already. Choose another name, or agree to "
                              "replace it when the app asks.")
            return False
        whole_file = is_video_file(spec)
        try:
            if whole_file:
                source = pipeline.open_source(spec, loop=False, paced=False)
                source.open()  # to learn its frame rate; the session opens it again
                fps = source.fps or 25.0
                source.close()
                sink = pipeline.RecorderSink(str(path), fps=fps, sync=False)
            else:
                fps = getattr(session.source, "fps", None) or self._last_fps or 25.0
                sink = pipeline.RecorderSink(str(path), fps=max(5.0, round(fps)), sync=True)
        except AvatarifyError as err:
            self.notices.warn("Cannot record", str(err))
            return False
        if whole_file:
            session.set_source(source, add_sinks=(sink,))  # exactly this pass's frames
        else:
            session.add_sink(sink)
        self._recorder, self._recording_file = sink, whole_file
        self._show(recording=path)
        self.notices.tell(f"Recording {Path(spec).name} from its start to {path}" if whole_file
                          else f"Recording to {path}")
        return True

    def stop_recording(self, wait: bool = False, back_to_live: bool = True) -> None:
        """Stop feeding the recorder; its queued frames are written and the file finished off the
        GUI thread (``wait``: here, blocking). After a whole video file, the file plays like a
        camera again (``back_to_live``; False when another source replaces it at once)."""
        sink, self._recorder = self._recorder, None
        if sink is None:
            return
        whole_file, self._recording_file = self._recording_file, False
        session, spec = self.controller.session, self.state.source
        path = self.state.outputs.recording
        self._show(recording=None)
        if wait or not back_to_live:
            if session is not None:
                session.remove_sink(sink)  # detached now: no frame of the next source gets in
            session = None
            if wait:
                try:
                    sink.close()
                except AvatarifyError as err:
                    log.warning("recording failed: %s", err)
                return

        def finish() -> None:  # off the GUI thread: the queued frames are written, the file closed
            if session is not None:
                session.remove_sink(sink)
            sink.close()

        def live_again() -> None:
            if whole_file and back_to_live and not self._closed and spec is not None \
                    and self.controller.session is not None and self.state.source == spec:
                self.controller.session.set_source(pipeline.open_source(spec, loop=self.controller.loop_video))

        self.notices.tell(f"Finishing {path}...")
        self.state.add_busy(+1)

        def done(_result: Any) -> None:
            self.state.add_busy(-1)
            live_again()
            self.notices.tell(f"Saved {path} ({sink.frames_written} frames)", 6000)

        def failed(err: BaseException) -> None:
            self.state.add_busy(-1)
            live_again()
            self.notices.clear()
            self.notices.warn("Recording failed", str(err))

        self.tasks.submit(finish, done, failed)

    # ----------------------------------------------------------------- what the session says
    def _on_stats(self, stats: Any) -> None:
        self._last_fps = float(stats.fps or 0.0)
        session = self.controller.session
        if self._recording_file and session is not None and session.ended:
            self.stop_recording()  # the whole video file is in the recording
        if self._vcam_sink is not None:
            text = (stats.sinks or {}).get(getattr(self._vcam_sink, "name", ""), None)
            if text:
                self._show(vcam_text=f"on: {text}")

    def _on_error(self, event: Any) -> None:
        if event.stage != "sink":
            return
        failed = getattr(event, "error", None)
        if self._vcam_sink is not None and isinstance(failed, VirtualCameraUnavailable):
            self._vcam_failed(failed)
        else:
            self.notices.warn("Output problem", event.message)

    def shutdown(self) -> None:
        """Finish the recording (blocking) and close the virtual camera."""
        self._closed = True
        self.stop_recording(wait=True)
        self._remove_vcam()
