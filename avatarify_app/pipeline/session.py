"""The headless live core: source -> tracker -> engine -> sinks, on two threads.

Threads (both owned by ``Session``; each has the session's stop event and is joined by
``stop()``):

- ``avatarify-capture`` opens the source, reads frames and puts each one into a single
  latest-frame slot. For a real-time source (camera, paced file) a frame still waiting
  there is replaced by the newer one and counted as dropped; nothing queues. For a
  non-real-time source (unpaced file) it waits until the previous frame was taken, so
  every frame is processed. A failing source is reported and reopened with backoff.
- ``avatarify-infer`` owns the tracker, the engine (created there, lazily, at start and
  on ``set_engine``) and the device. It runs the user's commands (``set_avatar``,
  ``recalibrate``, ...) between frames, processes the newest frame and feeds the sinks
  and the frame observers.

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
announced to the reference observers with a ``ReferenceEvent``: the first face frame
while there is none (at start, after ``recalibrate()`` or after a mirror change), the
pick of ``auto_calibrate()`` and ``set_reference()``. Clearing it (``recalibrate()``, a
mirror change) is announced too, with ``crop=None``. ``recalibrate``, ``auto_calibrate``
and ``set_reference`` return a request number that comes back in the events they cause,
so a caller can tell its own calibration from any other.

Where the parts live: ``Session`` (here) holds the state, the lifecycle and the public
controls; its methods for each thread come from small mixins that work on that state:
``capture.CaptureSide`` (the capture thread), ``worker.InferenceWorker`` (the inference
thread and the output policy), ``engine_host.EngineHost`` (engine and avatar),
``calibration.ReferenceKeeper`` (the reference and auto-calibration). ``slot.LatestSlot``
is the hand-over between the threads, ``observers.Observers`` the callbacks and the
error reporting, ``events`` the event types.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np

from avatarify_app.config import EngineConfig, LiveOptions, TrackingConfig
from avatarify_app.frames import check_frame
from avatarify_app.pipeline.calibration import Calibration, ReferenceKeeper
from avatarify_app.pipeline.capture import BACKOFF_S, CaptureSide
from avatarify_app.pipeline.engine_host import (
    Avatar,
    EngineHost,
    default_aligner,
    default_engine_factory,
    default_pose_match,
    default_tracker_factory,
)
from avatarify_app.pipeline.events import (
    REFERENCE_REASONS,
    STAGES,
    STATUSES,
    ErrorEvent,
    FrameEvent,
    ReferenceEvent,
    placeholder_frame,
)
from avatarify_app.pipeline.observers import ERROR_REPEAT_S, Observers
from avatarify_app.pipeline.sinks import Sink
from avatarify_app.pipeline.slot import LatestSlot
from avatarify_app.pipeline.sources import Source, open_source
from avatarify_app.pipeline.stats import Stats, StatsWindow
from avatarify_app.pipeline.worker import InferenceWorker

__all__ = [
    "BACKOFF_S",
    "ERROR_REPEAT_S",
    "REFERENCE_REASONS",
    "STAGES",
    "STATUSES",
    "ErrorEvent",
    "FrameEvent",
    "LatestSlot",
    "ReferenceEvent",
    "Session",
    "placeholder_frame",
]

log = logging.getLogger(__name__)


class Session(CaptureSide, InferenceWorker, EngineHost, ReferenceKeeper):
    """The live loop. See the module docstring for threads and the output policy.

    Observers are called from the session's worker threads (frames and stats from the
    inference thread; errors from whichever thread met them); they must return quickly and
    must not modify the arrays they get. A GUI queues them onto its own thread.
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
        stats_interval: float = 0.5,
        stats_window: int = 120,
    ) -> None:
        self._source = open_source(source) if isinstance(source, (str, int, Path)) else source
        self.engine_config = engine_config or EngineConfig()
        self._options = options or LiveOptions()
        self.tracking = tracking or TrackingConfig()
        self._engine_factory = engine_factory or default_engine_factory
        self._tracker_factory = tracker_factory or default_tracker_factory
        self._aligner = aligner or default_aligner
        self._pose_matcher = pose_matcher or default_pose_match
        self.stats_interval = stats_interval
        self._stats_window = stats_window

        self._lock = threading.Lock()
        self._sinks: list[Sink] = list(sinks)
        self._sink_errors: dict[int, str] = {}
        self._observers = Observers(self._lock)
        self._requests = itertools.count(1)
        self._commands: deque[Callable[[], None]] = deque()
        self._pending_source: list[Source | None] = []
        # set_source() bumps the generation; frames of an older source still in flight are dropped.
        self._generation = 0
        self._sink_from: dict[int, int] = {}  # id(sink) -> first generation it is fed (set_source)
        self._source_changed = threading.Event()

        self._stop = threading.Event()
        self._ready = threading.Event()
        self._ended = threading.Event()
        self._threads: list[threading.Thread] = []
        self._slot = LatestSlot()

        # Owned by the inference thread while running.
        self._engine = None
        self._tracker = None
        self._avatar: Avatar | None = None
        self._avatar_crop: np.ndarray | None = None  # the avatar at the engine's size
        self._reference: tuple[np.ndarray, np.ndarray | None] | None = None
        self._next_reference: tuple[str, int | None] = ("first_frame", None)  # for the implicit pick
        self._applied = self._options
        self._held: np.ndarray | None = None
        self._calibration: Calibration | None = None
        self._window = StatsWindow(stats_window)
        self._last_status = "starting"
        self._cards: dict[tuple[str, int], np.ndarray] = {}
        self._initial_avatar = avatar

    # ----------------------------------------------------------------- lifecycle
    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def start(self) -> None:
        """Start the capture and inference threads (the engine is built on the latter)."""
        if self.running:
            return
        self._stop.clear()
        self._ready.clear()
        self._ended.clear()
        self._slot = LatestSlot()
        self._window = StatsWindow(self._stats_window)
        self._threads = [
            threading.Thread(target=self._capture_loop, name="avatarify-capture", daemon=True),
            threading.Thread(target=self._infer_loop, name="avatarify-infer", daemon=True),
        ]
        for t in self._threads:
            t.start()

    def stop(self, timeout: float = 5.0, close_sinks: bool = True) -> None:
        """Stop and join both threads; close the sinks unless ``close_sinks`` is False."""
        self._stop.set()
        self._slot.close()
        self._source_changed.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            if t is threading.current_thread():
                continue  # stop() from an observer: the thread ends after this callback
            t.join(max(0.0, deadline - time.monotonic()))
            if t.is_alive():
                log.warning("thread %s did not stop within %.1f s", t.name, timeout)
        if close_sinks:
            with self._lock:
                sinks, self._sinks = list(self._sinks), []
                self._sink_from.clear()
            for sink in sinks:
                try:
                    sink.close()
                except Exception as err:
                    self._report("sink", err)

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until the inference thread has built (or failed to build) the tracker and engine."""
        return self._ready.wait(timeout)

    def wait_ended(self, timeout: float | None = None) -> bool:
        """Wait until a finite source (a non-looping file) ended and its last frame was processed."""
        return self._ended.wait(timeout)

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    @property
    def has_avatar(self) -> bool:
        return self._avatar is not None

    @property
    def avatar_notes(self) -> tuple[str, ...]:
        """What the user should know about the avatar in use (``tracking.AlignedFace.notes``: scaled
        down, transparency flattened, which of several faces, blurry); the same tuple object until
        the avatar changes."""
        avatar = self._avatar
        return avatar.notes if avatar is not None else ()

    def avatar_crop(self) -> np.ndarray | None:
        """The aligned avatar crop the engine animates (engine size; read-only), or None.

        This is the portrait after face framing, so it lines up with ``FrameEvent.crop``;
        ``FrameEvent.avatar`` carries the same array with every frame.
        """
        return self._avatar_crop

    @property
    def options(self) -> LiveOptions:
        return self._options

    @property
    def source(self) -> Source | None:
        return self._source

    # ------------------------------------------------------------------ controls
    def _post(self, command: Callable[[], None]) -> None:
        with self._lock:
            self._commands.append(command)

    def set_avatar(self, image_or_path: str | Path | np.ndarray) -> None:
        """Use a new avatar (asynchronous; on failure the error observers hear why, the old one stays)."""
        self._post(lambda: self._apply_avatar(image_or_path))

    def recalibrate(self) -> int:
        """The next frame with a face becomes the engine's reference; returns the request number."""
        request = next(self._requests)
        self._post(lambda: self._apply_recalibrate("recalibrate", request))
        return request

    def auto_calibrate(self, n_frames: int = 30) -> int:
        """Over the next ``n_frames`` face frames, use the one whose pose best matches the avatar.

        Returns the request number (the ReferenceEvent of the pick carries it).
        """
        request = next(self._requests)
        self._post(lambda: self._start_calibration(max(1, int(n_frames)), request))
        return request

    def set_reference(self, crop: np.ndarray, landmarks: np.ndarray | None = None) -> int:
        """Use this driving crop (and its crop-px landmarks) as the reference; returns the request number."""
        crop = check_frame(np.ascontiguousarray(crop), "reference crop")
        request = next(self._requests)
        self._post(lambda: self._apply_reference(crop, landmarks, "set", request))
        return request

    def reference(self) -> tuple[np.ndarray, np.ndarray | None] | None:
        """The reference (crop, landmarks) in use, or None before calibration."""
        return self._reference

    def update_options(self, options: LiveOptions) -> None:
        """Mirror, passthrough, motion (relative/adapt scale) and crop nudges, from the next frame."""
        self._options = options
        self._post(self._apply_options)

    def set_source(self, source: Source | str | int | None, *, add_sinks: tuple[Sink, ...] = ()) -> None:
        """Switch the driving source (the capture thread closes the old one and opens this one).

        ``add_sinks`` are fed exactly the frames of the new source, from its first one
        (a recording of a whole video file), never a frame of the old one still in flight.
        """
        if isinstance(source, (str, int, Path)):
            source = open_source(source)
        with self._lock:
            self._generation += 1
            self._pending_source.append(source)
            for sink in add_sinks:
                self._sinks.append(sink)
                self._sink_from[id(sink)] = self._generation
        self._ended.clear()
        self._source_changed.set()
        self._post(self._reset_tracking)

    def set_engine(self, config: EngineConfig) -> None:
        """Build another engine on the inference thread; the old one stays if that fails."""
        self._post(lambda: self._apply_engine(config))

    def add_sink(self, sink: Sink) -> None:
        """Feed ``sink`` too, from the next frame delivered (see ``set_source(add_sinks=)``)."""
        with self._lock:
            self._sinks.append(sink)

    def remove_sink(self, sink: Sink) -> None:
        """Stop feeding ``sink`` (the caller closes it)."""
        with self._lock:
            if sink in self._sinks:
                self._sinks.remove(sink)
            self._sink_errors.pop(id(sink), None)
            self._sink_from.pop(id(sink), None)

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
        engine = self._engine
        with self._lock:
            sinks = {s.name: self._sink_errors.get(id(s)) or str(getattr(s, "status", "ok"))
                     for s in self._sinks}
        return self._window.snapshot(
            dropped=self._slot.dropped, engine=getattr(engine, "name", None),
            device=getattr(engine, "device", None), sinks=sinks, status=self._last_status)


    def _report(self, stage: str, error: BaseException) -> None:
        """Tell the error observers (rate-limited; see ``observers.Observers.report``)."""
        self._observers.report(stage, error)
