"""The headless live core: source -> tracker -> engine -> outputs, each stage on its own thread.

Parts (each owns its state; none reads another's private fields; what a part needs from
another is passed into its calls):

- ``capture`` (``capture.Capture``): the source, its generation and the ``avatarify-capture``
  thread. It puts each frame into a single latest-frame slot. For a real-time source
  (camera, paced file) a frame still waiting there is replaced by the newer one and counted
  as dropped; nothing queues. For a non-real-time source (unpaced file) it waits until the
  previous frame was taken, so every frame is processed. A failing source is reported and
  reopened with backoff.
- ``engine host`` (``engine_host.EngineHost``): the engine (chosen through the engine
  registry, so ``Stats.engine_note`` says why), its config, the avatar and its crops.
- ``reference keeper`` (``calibration.ReferenceKeeper``): the one holder of the reference,
  auto-calibration and (opt-in) the calibrations saved per avatar.
- ``inference loop`` (``worker.InferenceLoop``): the ``avatarify-infer`` thread. It owns
  the tracker and the device (the engine is built there, at start and on ``set_engine``),
  runs the user's commands (``set_avatar``, ``recalibrate``, ...) between frames, processes
  the newest frame and applies the output policy.
- ``outputs`` (``outputs.Outputs``): each sink on its own ``avatarify-sink-<name>`` thread
  with a newest-frame-wins slot (a recorder keeps a small queue), so a slow output never
  stalls inference or the other outputs; ``Stats.sinks`` names a slow or failed one.

Every thread has an owner, a stop event and a join: ``stop()`` stops and joins them all
(a recorder's queue is sent first) and keeps the sinks, so ``start()`` feeds them
again; ``close()`` also closes the sinks.

Output policy (what the sinks get):

- ``ok``: the animated avatar.
- ``no_face``: the last good output is held (a neutral card before the first one); the
  engine never sees a frame without a face, so no garbage goes out.
- ``no_avatar``: a neutral card saying "no avatar", NOT the camera: a user who starts an
  avatar app does not expect their real face in a call. The camera shows up only in
  ``passthrough``, which the user turns on explicitly. ``FrameEvent.camera`` always has
  the camera frame for the preview.
- ``calibrating``: auto-calibration is collecting frames; the avatar keeps moving with the
  old reference (or the held frame while there is none).
- ``no_engine``: the engine could not be built (reported); the neutral card.
- ``error``: the engine failed on this frame (reported); the last good output is held.

The reference (the driving face that means "no motion") changes in a few ways, each
announced to the reference observers with a ``ReferenceEvent``: the engine's first face
frame while it has none (at start, after ``recalibrate()`` or after a mirror change; an
engine that keeps no reference, as in absolute motion, announces nothing), the pick of
``auto_calibrate()`` (only at or above ``tracking.pose.CALIBRATION_MIN_MATCH``: below it
the previous reference stays and the error observers hear which way to move, with the
request number), ``set_reference()`` and, with ``saved_calibrations``, the calibration
saved for the avatar ("saved"). Clearing it (``recalibrate()``, a mirror change) is
announced too, with ``crop=None``. ``recalibrate``, ``auto_calibrate`` and ``set_reference``
return a request number that comes back in the events they cause, so a caller can tell
its own calibration from any other.

Crop settings live in one place: ``LiveOptions.crop`` frames the driving face (the user's
zoom and offsets, changed live with ``update_options``); portraits are framed the default
way at that crop size. ``TrackingConfig`` gives the tracker's back-end and confidence.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from avatarify_app.config import CropConfig, EngineConfig, LiveOptions, TrackingConfig
from avatarify_app.errors import ConfigError
from avatarify_app.frames import check_frame
from avatarify_app.pipeline import avatar_store
from avatarify_app.pipeline.calibration import ReferenceKeeper
from avatarify_app.pipeline.capture import BACKOFF_S, Capture
from avatarify_app.pipeline.engine_host import EngineHost, default_pose_match, default_tracker_factory
from avatarify_app.pipeline.events import (
    ERROR_STAGES,
    REFERENCE_REASONS,
    STATUSES,
    ErrorEvent,
    FrameEvent,
    ReferenceEvent,
    placeholder_frame,
)
from avatarify_app.pipeline.observers import REPORT_REPEAT_S, Observers
from avatarify_app.pipeline.outputs import Outputs
from avatarify_app.pipeline.sinks import Sink
from avatarify_app.pipeline.slot import LatestSlot
from avatarify_app.pipeline.sources import Source, open_source
from avatarify_app.pipeline.stats import Stats
from avatarify_app.pipeline.worker import InferenceLoop
from avatarify_app.tracking.pose import pose_hint

__all__ = [
    "BACKOFF_S",
    "ERROR_STAGES",
    "REFERENCE_REASONS",
    "REPORT_REPEAT_S",
    "STATUSES",
    "ErrorEvent",
    "FrameEvent",
    "LatestSlot",
    "ReferenceEvent",
    "Session",
    "placeholder_frame",
]

log = logging.getLogger(__name__)


class Session:
    """The live loop. See the module docstring for its parts, threads and the output policy.

    Observers are called from the session's worker threads (frames and stats from the
    inference thread; errors from whichever thread met them; a ``PreviewSink``'s callback
    from its own output thread); they must return quickly and must not modify the arrays
    they get. A GUI queues them onto its own thread.

    ``saved_calibrations``: use ``avatar_store`` (calibrations saved per avatar and camera
    orientation): apply the saved one when the avatar is a file or a gallery name that has
    one, and save the references the user sets (``recalibrate``, an accepted
    ``auto_calibrate``, ``set_reference``).
    """

    def __init__(
        self,
        source: Source | str | int | None = None,
        *,
        engine_config: EngineConfig | None = None,
        options: LiveOptions | None = None,
        tracking: TrackingConfig | None = None,
        sinks: tuple[Sink, ...] | list[Sink] = (),
        avatar: str | Path | np.ndarray | None = None,
        engine_factory: Callable | None = None,
        tracker_factory: Callable | None = None,
        aligner: Callable | None = None,
        pose_matcher: Callable | None = None,
        pose_hinter: Callable | None = None,
        saved_calibrations: bool = False,
        stats_interval: float = 0.5,
        stats_window: int = 120,
    ) -> None:
        options = options or LiveOptions()
        tracking = tracking or TrackingConfig()
        if tracking.crop not in (CropConfig(), options.crop):
            raise ConfigError("The session got two different crop settings (TrackingConfig.crop and "
                              "LiveOptions.crop).",
                              "Set the framing in LiveOptions.crop only; the session ignores TrackingConfig.crop.")
        self._options = options  # as requested; the inference loop applies them in order
        self._requests = itertools.count(1)
        self._observers = Observers()
        report = self._observers.report
        if isinstance(source, (str, int, Path)):
            source = open_source(source)
        self._capture = Capture(source, report)
        self._host = EngineHost(engine_config or EngineConfig(), report, factory=engine_factory, aligner=aligner)
        self._keeper = ReferenceKeeper(lambda event: self._observers.notify("reference", event), report,
                                       saved=saved_calibrations)
        self._outputs = Outputs(sinks, report)
        self._loop = InferenceLoop(
            capture=self._capture, host=self._host, keeper=self._keeper, outputs=self._outputs,
            observers=self._observers, options=options, tracking=tracking,
            tracker_factory=tracker_factory or default_tracker_factory,
            pose_matcher=pose_matcher or default_pose_match, pose_hinter=pose_hinter or pose_hint,
            stats=self.stats, stats_interval=stats_interval, stats_window=stats_window)
        if avatar is not None:
            self.set_avatar(avatar)  # applied on the inference thread once it starts

    # ----------------------------------------------------------------- lifecycle
    @property
    def running(self) -> bool:
        return self._loop.running or self._capture.running

    def start(self) -> None:
        """Start the outputs', inference and capture threads (the engine is built on the inference one)."""
        if self.running:
            return
        self._outputs.start()
        self._loop.start()
        self._capture.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop and join every thread; a recorder's queue is sent first. The sinks stay
        (``start`` feeds them again); ``close`` closes them."""
        deadline = time.monotonic() + timeout
        self._capture.request_stop()
        self._loop.request_stop()
        self._capture.join(deadline)
        self._loop.join(deadline)
        self._outputs.stop(deadline)

    def close(self, timeout: float = 5.0) -> None:
        """``stop``, then close every sink (a recording is finished here) and forget them."""
        deadline = time.monotonic() + timeout
        self.stop(timeout)
        self._outputs.close(deadline)

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until the inference thread has built (or failed to build) the tracker and engine
        and applied what was asked before ``start`` (the avatar, ...)."""
        return self._loop.ready.wait(timeout)

    def wait_ended(self, timeout: float | None = None) -> bool:
        """Wait until a finite source (a non-looping file) ended and its last frame was
        processed and sent by the outputs."""
        return self._loop.ended.wait(timeout)

    @property
    def ended(self) -> bool:
        return self._loop.ended.is_set()

    @property
    def has_avatar(self) -> bool:
        return self._host.avatar is not None

    @property
    def avatar_notes(self) -> tuple[str, ...]:
        """What the user should know about the avatar in use (``tracking.AlignedFace.notes``: scaled
        down, transparency flattened, which of several faces, blurry); the same tuple object until
        the avatar changes."""
        avatar = self._host.avatar
        return avatar.notes if avatar is not None else ()

    def avatar_crop(self) -> np.ndarray | None:
        """The aligned avatar crop the engine animates (engine size; read-only), or None.

        This is the portrait after face framing, so it lines up with ``FrameEvent.crop``;
        ``FrameEvent.avatar`` carries the same array with every frame.
        """
        return self._host.avatar_crop

    @property
    def options(self) -> LiveOptions:
        return self._options

    @property
    def source(self) -> Source | None:
        return self._capture.source

    @property
    def engine_config(self) -> EngineConfig:
        """The engine config in use as asked for (``Stats.engine_note`` says what "auto" chose)."""
        return self._host.config

    # ------------------------------------------------------------------ controls
    def set_avatar(self, image_or_path: str | Path | np.ndarray) -> None:
        """Use a new avatar: an image, a file or a gallery name ("astronaut"); asynchronous (on
        failure the error observers hear why, the old one stays)."""
        spec = image_or_path
        if isinstance(spec, str):
            spec = avatar_store.find_avatar(spec) or spec  # a name that is no file: let loading say why
        self._loop.post(lambda: self._loop.set_avatar(spec))

    def recalibrate(self) -> int:
        """The next frame with a face becomes the engine's reference; returns the request number."""
        request = next(self._requests)
        self._loop.post(lambda: self._loop.recalibrate(request))
        return request

    def auto_calibrate(self, n_frames: int = 30) -> int:
        """Over the next ``n_frames`` face frames, use the one whose pose best matches the avatar,
        if it matches well enough (see the module docstring).

        Returns the request number (the ReferenceEvent of the pick, or the ErrorEvent of a
        rejection, carries it).
        """
        request = next(self._requests)
        n = max(1, int(n_frames))
        self._loop.post(lambda: self._loop.auto_calibrate(n, request))
        return request

    def set_reference(self, crop: np.ndarray, landmarks: np.ndarray | None = None) -> int:
        """Use this driving crop (and its crop-px landmarks) as the reference; returns the request number."""
        crop = check_frame(np.ascontiguousarray(crop), "reference crop")
        request = next(self._requests)
        self._loop.post(lambda: self._loop.set_reference(crop, landmarks, request))
        return request

    def reference(self) -> tuple[np.ndarray, np.ndarray | None] | None:
        """The reference (crop, landmarks) in use, or None before calibration."""
        return self._keeper.reference

    def update_options(self, options: LiveOptions) -> None:
        """Mirror, passthrough, motion (relative/adapt scale) and crop nudges, from the next frame."""
        self._options = options
        self._loop.post(lambda: self._loop.apply_options(options))

    def set_source(self, source: Source | str | int | None, *, add_sinks: tuple[Sink, ...] = ()) -> None:
        """Switch the driving source (the capture thread closes the old one and opens this one).

        ``add_sinks`` are fed exactly the frames of the new source, from its first one
        (a recording of a whole video file), never a frame of the old one still in flight.
        """
        if isinstance(source, (str, int, Path)):
            source = open_source(source)

        def register(generation: int) -> None:
            for sink in add_sinks:
                self._outputs.add(sink, from_generation=generation)

        self._loop.ended.clear()
        self._capture.set_source(source, on_switch=register)
        self._loop.post(self._loop.reset_tracking)

    def set_engine(self, config: EngineConfig) -> None:
        """Build another engine on the inference thread; the old one stays if that fails."""
        self._loop.post(lambda: self._loop.set_engine(config))

    def set_engine_controls(self, values: dict[str, Any]) -> None:
        """Live engine options (``EngineOption.live``), from the next frame: passed to the
        engine's ``set_controls`` when it has one, and kept in ``engine_config``."""
        values = dict(values)
        self._loop.post(lambda: self._loop.set_controls(values))

    def add_sink(self, sink: Sink) -> None:
        """Feed ``sink`` too (on its own thread), from the next frame delivered (see
        ``set_source(add_sinks=)``)."""
        self._outputs.add(sink)

    def remove_sink(self, sink: Sink, timeout: float = 5.0) -> None:
        """Stop feeding ``sink``: its queue (a recorder's) is still sent, then its thread is joined; the
        caller closes it."""
        self._outputs.remove(sink, timeout)

    def add_frame_observer(self, callback: Callable[[FrameEvent], None]) -> Callable[[], None]:
        return self._observers.subscribe("frame", callback)

    def add_stats_observer(self, callback: Callable[[Stats], None]) -> Callable[[], None]:
        return self._observers.subscribe("stats", callback)

    def add_error_observer(self, callback: Callable[[ErrorEvent], None]) -> Callable[[], None]:
        return self._observers.subscribe("error", callback)

    def add_reference_observer(self, callback: Callable[[ReferenceEvent], None]) -> Callable[[], None]:
        """``callback(ReferenceEvent)`` whenever the reference is set or cleared (inference thread)."""
        return self._observers.subscribe("reference", callback)

    def stats(self) -> Stats:
        """The current figures (safe from any thread)."""
        window = self._loop.window()
        fps = window.fps()
        sink_stats = self._outputs.snapshot(1000.0 / fps if fps > 0 else 0.0)
        engine = self._host.engine
        return window.snapshot(
            dropped=self._capture.dropped, engine=getattr(engine, "name", None),
            device=getattr(engine, "device", None), engine_note=self._host.note,
            sinks={name: s.text() for name, s in sink_stats.items()}, sink_stats=sink_stats,
            status=self._loop.status)
