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
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from avatarify_app.config import EngineConfig, LiveOptions, TrackingConfig
from avatarify_app.errors import AvatarifyError, BadImageError, EngineError
from avatarify_app.frames import as_frame, check_frame, load_image, resize
from avatarify_app.pipeline.sinks import Sink
from avatarify_app.pipeline.sources import Source, open_source
from avatarify_app.pipeline.stats import Stats, StatsWindow

log = logging.getLogger(__name__)

STATUSES = ("ok", "no_face", "passthrough", "no_avatar", "calibrating", "no_engine", "error")
STAGES = ("source", "tracking", "engine", "sink", "avatar")
# Why the reference changed (ReferenceEvent.reason).
REFERENCE_REASONS = ("first_frame", "recalibrate", "auto", "set", "mirror")
ERROR_REPEAT_S = 5.0  # the same error from the same stage is reported at most this often
BACKOFF_S = (0.25, 5.0)  # first and longest wait before reopening a failed source

_STAGE_TEXT = {
    "source": "The camera or video stopped working",
    "tracking": "Face tracking failed",
    "engine": "The animation engine failed",
    "sink": "An output failed",
    "avatar": "The avatar could not be used",
}


@dataclass(frozen=True)
class FrameEvent:
    """One processed frame (arrays are shared with the sinks: treat them as read-only)."""

    index: int
    t_capture: float
    camera: np.ndarray  # the camera frame, mirrored if asked
    crop: np.ndarray | None  # the driving face crop (engine size) or None
    box: Any  # tracking.CropBox in camera px, or None
    landmarks: np.ndarray | None  # (468, 2) camera px, or None
    output: np.ndarray  # what the sinks got
    status: str
    pose_match: float | None  # avatar vs driving pose in [0, 1]
    debug: dict[str, np.ndarray] = field(default_factory=dict)
    avatar: np.ndarray | None = None  # the aligned avatar crop the engine animates (engine size)


@dataclass(frozen=True)
class ReferenceEvent:
    """The reference changed (see the module docstring). Arrays are copies owned by the event."""

    crop: np.ndarray | None  # the driving crop now used as the reference; None = cleared
    landmarks: np.ndarray | None  # its landmarks in crop px, or None
    reason: str  # one of REFERENCE_REASONS
    request: int | None  # what recalibrate()/auto_calibrate()/set_reference() returned; None otherwise
    mirror: bool  # whether the camera was mirrored for this reference
    pose_match: float | None = None  # the avatar vs reference pose match, when known


@dataclass(frozen=True)
class ErrorEvent:
    stage: str  # one of STAGES
    error: BaseException
    message: str  # what to tell the user


@dataclass
class _Calibration:
    frames_left: int
    request: int
    best_score: float = -1.0
    best: tuple[np.ndarray, np.ndarray | None] | None = None


@dataclass(frozen=True)
class _Avatar:
    image: np.ndarray
    landmarks: np.ndarray | None


_EMPTY = object()
_END = object()  # the capture thread hands over (generation, _END) when a finite source ended


def _is_end(item: Any) -> bool:
    return item is _END or (isinstance(item, tuple) and len(item) == 2 and item[1] is _END)


class LatestSlot:
    """A one-item hand-over between the capture and inference threads."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Any = _EMPTY
        self._closed = False
        self.dropped = 0

    def put(self, item: Any, wait: bool = False) -> bool:
        """Store ``item``; a waiting item is replaced (and counted) unless ``wait``. False when closed."""
        with self._cond:
            while wait and self._item is not _EMPTY and not self._closed:
                self._cond.wait(0.1)
            if self._closed:
                return False
            if self._item is not _EMPTY and not _is_end(self._item):
                self.dropped += 1
            self._item = item
            self._cond.notify_all()
            return True

    def take(self, timeout: float) -> Any:
        """The item, or ``_EMPTY`` after ``timeout`` seconds or when closed."""
        with self._cond:
            if self._item is _EMPTY and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, _EMPTY
            if item is not _EMPTY:
                self._cond.notify_all()
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


def _default_engine_factory(config: EngineConfig, motion):
    from avatarify_app.engines import create_engine

    return create_engine(config, motion)


def _default_tracker_factory(tracking: TrackingConfig):
    from avatarify_app.tracking import StreamTracker

    return StreamTracker(tracking)


def _default_aligner(image: np.ndarray, tracking: TrackingConfig):
    from avatarify_app.tracking import align_portrait

    return align_portrait(image, tracking)


def _default_pose_match(a: np.ndarray, b: np.ndarray) -> float:
    from avatarify_app.tracking import pose_match

    return pose_match(a, b)


def _to_size(image: np.ndarray, landmarks: np.ndarray | None, size: int):
    """A square crop (and its landmarks) scaled to ``size`` x ``size``."""
    if image.shape[0] == size and image.shape[1] == size:
        return image, landmarks
    scaled = None
    if landmarks is not None:
        scaled = (np.asarray(landmarks, np.float32) * np.float32(size / image.shape[1])).astype(np.float32)
    return resize(image, (size, size)), scaled


def placeholder_frame(text: str, size: int = 256) -> np.ndarray:
    """A neutral dark card with one line of text (what goes out instead of garbage)."""
    frame = np.full((size, size, 3), 32, np.uint8)
    scale = size / 512
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    org = ((size - tw) // 2, (size + th) // 2)
    cv2.putText(frame, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (200, 200, 200), 1, cv2.LINE_AA)
    return frame


class Session:
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
        self._engine_factory = engine_factory or _default_engine_factory
        self._tracker_factory = tracker_factory or _default_tracker_factory
        self._aligner = aligner or _default_aligner
        self._pose_matcher = pose_matcher or _default_pose_match
        self.stats_interval = stats_interval
        self._stats_window = stats_window

        self._lock = threading.Lock()
        self._sinks: list[Sink] = list(sinks)
        self._sink_errors: dict[int, str] = {}
        self._frame_observers: list[Callable[[FrameEvent], None]] = []
        self._stats_observers: list[Callable[[Stats], None]] = []
        self._error_observers: list[Callable[[ErrorEvent], None]] = []
        self._reference_observers: list[Callable[[ReferenceEvent], None]] = []
        self._requests = itertools.count(1)
        self._commands: deque[Callable[[], None]] = deque()
        self._pending_source: list[Source | None] = []
        # set_source() bumps the generation; frames of an older source still in flight are dropped.
        self._generation = 0
        self._sink_from: dict[int, int] = {}  # id(sink) -> first generation it is fed (set_source)
        self._source_changed = threading.Event()
        self._last_reported: dict[tuple, float] = {}

        self._stop = threading.Event()
        self._ready = threading.Event()
        self._ended = threading.Event()
        self._threads: list[threading.Thread] = []
        self._slot = LatestSlot()

        # Owned by the inference thread while running.
        self._engine = None
        self._tracker = None
        self._avatar: _Avatar | None = None
        self._avatar_crop: np.ndarray | None = None  # the avatar at the engine's size
        self._reference: tuple[np.ndarray, np.ndarray | None] | None = None
        self._next_reference: tuple[str, int | None] = ("first_frame", None)  # for the implicit pick
        self._applied = self._options
        self._held: np.ndarray | None = None
        self._calibration: _Calibration | None = None
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

    def _subscribe(self, observers: list, callback: Callable) -> Callable[[], None]:
        with self._lock:
            observers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in observers:
                    observers.remove(callback)

        return unsubscribe

    def add_frame_observer(self, callback: Callable[[FrameEvent], None]) -> Callable[[], None]:
        return self._subscribe(self._frame_observers, callback)

    def add_stats_observer(self, callback: Callable[[Stats], None]) -> Callable[[], None]:
        return self._subscribe(self._stats_observers, callback)

    def add_error_observer(self, callback: Callable[[ErrorEvent], None]) -> Callable[[], None]:
        return self._subscribe(self._error_observers, callback)

    def add_reference_observer(self, callback: Callable[[ReferenceEvent], None]) -> Callable[[], None]:
        """``callback(ReferenceEvent)`` whenever the reference is set or cleared (inference thread)."""
        return self._subscribe(self._reference_observers, callback)

    def stats(self) -> Stats:
        """The current figures (safe from any thread)."""
        engine = self._engine
        with self._lock:
            sinks = {s.name: self._sink_errors.get(id(s)) or str(getattr(s, "status", "ok"))
                     for s in self._sinks}
        return self._window.snapshot(
            dropped=self._slot.dropped, engine=getattr(engine, "name", None),
            device=getattr(engine, "device", None), sinks=sinks, status=self._last_status)

    # ------------------------------------------------------------------ reporting
    def _report(self, stage: str, error: BaseException) -> None:
        key = (stage, type(error).__name__, str(error))
        now = time.monotonic()
        with self._lock:
            last = self._last_reported.get(key)
            if last is not None and now - last < ERROR_REPEAT_S:
                return
            if len(self._last_reported) > 256:
                self._last_reported.clear()
            self._last_reported[key] = now
            observers = list(self._error_observers)
        if isinstance(error, AvatarifyError):
            message = str(error)
        else:
            message = f"{_STAGE_TEXT.get(stage, stage)}: {type(error).__name__}: {error}"
        log.info("reported %s error: %s", stage, message)
        event = ErrorEvent(stage, error, message)
        for cb in observers:
            try:
                cb(event)
            except Exception:
                log.exception("error observer failed")

    # ---------------------------------------------------------------- capture side
    def _next_source(self, current: Source | None, generation: int) -> tuple[bool, Source | None, int]:
        with self._lock:
            if not self._pending_source:
                return False, current, generation
            new = self._pending_source[-1]
            self._pending_source.clear()
            generation = self._generation
        self._source = new
        return True, new, generation

    def _capture_loop(self) -> None:
        source = self._source
        with self._lock:
            generation = self._generation
        opened = ended = False
        backoff = BACKOFF_S[0]
        index = 0
        try:
            while not self._stop.is_set():
                changed, new, generation = self._next_source(source, generation)
                if changed:
                    if opened:
                        self._close_source(source)
                    source, opened, ended, backoff = new, False, False, BACKOFF_S[0]
                if source is None or ended:
                    self._source_changed.wait(0.1)
                    self._source_changed.clear()
                    continue
                try:
                    if not opened:
                        source.open()
                        opened = True
                    got = source.read()
                except Exception as err:
                    self._report("source", err)
                    if opened:
                        self._close_source(source)
                        opened = False
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, BACKOFF_S[1])
                    continue
                if got is None:
                    ended = True
                    self._close_source(source)
                    opened = False
                    self._slot.put((generation, _END), wait=True)
                    continue
                backoff = BACKOFF_S[0]
                frame, t_capture = got
                realtime = bool(getattr(source, "realtime", True))
                if not self._slot.put((generation, index, frame, t_capture), wait=not realtime):
                    break
                index += 1
        finally:
            if opened and source is not None:
                self._close_source(source)

    def _close_source(self, source: Source) -> None:
        try:
            source.close()
        except Exception as err:
            self._report("source", err)

    # -------------------------------------------------------------- inference side
    def _infer_loop(self) -> None:
        try:
            self._setup()
            next_stats = time.perf_counter() + self.stats_interval
            while not self._stop.is_set():
                self._run_commands()
                item = self._slot.take(timeout=0.05)
                if item is not _EMPTY and item[0] == self._generation:  # else: from a replaced source
                    if item[1] is _END:
                        self._ended.set()
                    else:
                        self._process(*item)
                now = time.perf_counter()
                if now >= next_stats:
                    next_stats = now + self.stats_interval
                    self._emit_stats()
        finally:
            self._teardown()

    def _setup(self) -> None:
        try:
            self._applied = self._options
            try:
                self._tracker = self._tracker_factory(replace(self.tracking, crop=self._applied.crop))
            except Exception as err:
                self._report("tracking", err)
            engine = self._build_engine(self.engine_config)
            if engine is not None:
                self._engine = engine
                self._size_avatar()
            if self._initial_avatar is not None:
                avatar, self._initial_avatar = self._initial_avatar, None
                self._apply_avatar(avatar)
        finally:
            self._ready.set()

    def _teardown(self) -> None:
        self._emit_stats()
        engine, self._engine = self._engine, None
        tracker, self._tracker = self._tracker, None
        for stage, obj in (("engine", engine), ("tracking", tracker)):
            if obj is not None:
                try:
                    obj.close()
                except Exception as err:
                    self._report(stage, err)

    def _run_commands(self) -> None:
        while True:
            with self._lock:
                if not self._commands:
                    return
                command = self._commands.popleft()
            command()

    def _build_engine(self, config: EngineConfig):
        """A new engine with the current avatar and reference, or None (reported)."""
        try:
            engine = self._engine_factory(config, self._applied.motion)
        except Exception as err:
            self._report("engine", err)
            return None
        try:
            if self._avatar is not None:
                image, lms = _to_size(self._avatar.image, self._avatar.landmarks, engine.size)
                engine.set_source(image, lms)
            if self._reference is not None:
                crop, lms = _to_size(*self._reference, engine.size)
                engine.set_reference(crop, lms)
        except Exception as err:
            self._report("engine", err)
            self._close_quietly(engine)
            return None
        return engine

    def _close_quietly(self, obj) -> None:
        try:
            obj.close()
        except Exception:
            log.exception("closing %r failed", obj)

    def _apply_engine(self, config: EngineConfig) -> None:
        engine = self._build_engine(config)
        if engine is None:
            return
        old, self._engine = self._engine, engine
        self._size_avatar()
        self.engine_config = config
        self._held = None
        if old is not None:
            self._close_quietly(old)

    def _apply_avatar(self, spec: str | Path | np.ndarray) -> None:
        try:
            if isinstance(spec, (str, Path)):
                image = load_image(spec)
            else:
                try:
                    image = as_frame(spec)
                except (ValueError, TypeError) as err:
                    raise BadImageError(f"Not an image: {err}") from err
            aligned = self._aligner(image, self.tracking)
            avatar = _Avatar(check_frame(aligned.image, "aligned avatar"), aligned.landmarks)
            if self._engine is not None:
                face, lms = _to_size(avatar.image, avatar.landmarks, self._engine.size)
                self._engine.set_source(face, lms)
        except Exception as err:
            self._report("avatar", err)
            return
        self._avatar = avatar
        self._size_avatar()
        self._held = None

    def _size_avatar(self) -> None:
        """Keep the avatar crop at the engine's size (one array per avatar and engine size)."""
        avatar = self._avatar
        if avatar is None:
            self._avatar_crop = None
            return
        size = getattr(self._engine, "size", None)
        image = _to_size(avatar.image, None, int(size))[0] if size else avatar.image
        view = image.view()  # read-only for the observers, without locking the owner's array
        view.setflags(write=False)
        self._avatar_crop = view

    def _announce_reference(self, reason: str, request: int | None, score: float | None = None) -> None:
        ref = self._reference
        crop = lms = None
        if ref is not None:
            crop = np.array(ref[0], copy=True)
            lms = None if ref[1] is None else np.array(ref[1], np.float32, copy=True)
        event = ReferenceEvent(crop, lms, reason, request, bool(self._applied.mirror), score)
        with self._lock:
            observers = list(self._reference_observers)
        for cb in observers:
            try:
                cb(event)
            except Exception:
                log.exception("reference observer failed")

    def _apply_recalibrate(self, reason: str = "recalibrate", request: int | None = None) -> None:
        """Clear the reference: the next face frame becomes the new one (announced with ``reason``)."""
        self._calibration = None
        self._reference = None
        self._next_reference = (reason, request)
        if self._engine is not None:
            try:
                self._engine.set_reference(None)
            except Exception as err:
                self._report("engine", err)
        self._announce_reference(reason, request)

    def _apply_reference(self, crop: np.ndarray, landmarks: np.ndarray | None, reason: str,
                         request: int | None, score: float | None = None) -> None:
        self._calibration = None
        if self._engine is not None:
            try:
                image, lms = _to_size(crop, landmarks, self._engine.size)
                self._engine.set_reference(image, lms)
            except Exception as err:
                self._report("engine", err)
                return
        self._reference = (crop, landmarks)
        self._next_reference = ("first_frame", None)
        self._announce_reference(reason, request, score)

    def _start_calibration(self, n_frames: int, request: int) -> None:
        if self._avatar is None or self._avatar.landmarks is None:
            self._report("avatar", EngineError("Auto-calibration needs an avatar with a detected face.",
                                               "Choose an avatar first, or use calibrate."))
            return
        self._calibration = _Calibration(n_frames, request)

    def _apply_options(self) -> None:
        new, old = self._options, self._applied
        self._applied = new
        if new.motion != old.motion and self._engine is not None:
            try:
                self._engine.set_options(new.motion)
            except Exception as err:
                self._report("engine", err)
        if new.crop != old.crop and self._tracker is not None:
            try:
                self._tracker.set_crop(new.crop)
            except Exception as err:
                self._report("tracking", err)
        if new.mirror != old.mirror:
            # The picture flips: smoothing restarts and the reference must be taken again (a
            # reference is a face seen one way round; its mesh landmarks do not flip with it).
            self._reset_tracking()
            self._apply_recalibrate("mirror", None)

    def _reset_tracking(self) -> None:
        if self._tracker is not None:
            try:
                self._tracker.reset()
            except Exception as err:
                self._report("tracking", err)

    def _card(self, text: str) -> np.ndarray:
        size = int(getattr(self._engine, "size", 256) or 256)
        key = (text, size)
        if key not in self._cards:
            self._cards[key] = placeholder_frame(text, size)
        return self._cards[key]

    def _held_or(self, text: str) -> np.ndarray:
        return self._held if self._held is not None else self._card(text)

    def _calibrate_step(self, crop: np.ndarray, lms: np.ndarray | None, score: float | None) -> None:
        cal = self._calibration
        if score is not None and score > cal.best_score:
            cal.best_score, cal.best = score, (crop.copy(), None if lms is None else lms.copy())
        cal.frames_left -= 1
        if cal.frames_left <= 0:
            self._calibration = None
            if cal.best is not None:
                self._apply_reference(*cal.best, "auto", cal.request, cal.best_score)
                log.info("auto-calibration picked a reference with pose match %.3f", cal.best_score)
            else:
                self._report("tracking", EngineError(
                    "Auto-calibration found no frame it could compare with the avatar.",
                    "Face the camera in good light and try again, or use calibrate."))

    def _process(self, generation: int, index: int, frame: np.ndarray, t_capture: float) -> None:
        t_start = time.perf_counter()
        opts = self._applied
        if opts.mirror:
            frame = np.ascontiguousarray(frame[:, ::-1])
        result = None
        if self._tracker is not None:
            try:
                result = self._tracker.process(frame, t_capture)
            except Exception as err:
                self._report("tracking", err)
        t_tracked = time.perf_counter()

        crop = lms = box = cam_lms = None
        score = None
        engine = self._engine
        if result is not None:
            box, cam_lms = result.box, getattr(result.face, "landmarks", None)
            crop, lms = result.crop, result.landmarks
            if engine is not None:
                crop, lms = _to_size(crop, lms, engine.size)
            if self._avatar is not None and self._avatar.landmarks is not None and lms is not None:
                try:
                    score = float(self._pose_matcher(self._avatar.landmarks, lms))
                except Exception as err:
                    self._report("tracking", err)

        debug: dict[str, np.ndarray] = {}
        if opts.passthrough:
            status, output = "passthrough", frame
        elif engine is None:
            status, output = "no_engine", self._card("no engine")
        elif self._avatar is None:
            status, output = "no_avatar", self._card("no avatar")
        elif result is None:
            status, output = "no_face", self._held_or("no face")
        else:
            status, output = "ok", None
            if self._calibration is not None:
                self._calibrate_step(crop, lms, score)
                if self._calibration is not None:
                    status = "calibrating"
                    if not engine.has_reference():
                        output = self._held_or("calibrating")
            if output is None:
                output, status = self._animate(engine, crop, lms, status, score)
            if status != "error" and getattr(opts, "debug", False):
                try:
                    debug = dict(engine.debug_info())
                except Exception as err:
                    self._report("engine", err)
        t_animated = time.perf_counter()

        self._deliver(output, t_capture, generation)
        event = FrameEvent(index, t_capture, frame, crop, box, cam_lms, output, status, score, debug,
                           self._avatar_crop)
        with self._lock:
            observers = list(self._frame_observers)
        for cb in observers:
            try:
                cb(event)
            except Exception:
                log.exception("frame observer failed")
        t_done = time.perf_counter()
        self._last_status = status
        self._window.add(
            {"capture": (t_start - t_capture) * 1000, "tracking": (t_tracked - t_start) * 1000,
             "engine": (t_animated - t_tracked) * 1000, "output": (t_done - t_animated) * 1000},
            (t_done - t_capture) * 1000, t_done)

    def _animate(self, engine, crop: np.ndarray, lms: np.ndarray | None, status: str, score: float | None):
        had_reference = engine.has_reference()
        try:
            out = engine.predict(crop, lms)
            check_frame(out, "engine output")
        except Exception as err:
            self._report("engine", err)
            return self._held_or("engine error"), "error"
        if not had_reference:
            # The engine took this frame as its reference.
            self._reference = (crop.copy(), None if lms is None else np.array(lms, copy=True))
            (reason, request), self._next_reference = self._next_reference, ("first_frame", None)
            self._announce_reference(reason, request, score)
        self._held = out
        return out, status

    def _deliver(self, output: np.ndarray, t_capture: float, generation: int) -> None:
        with self._lock:
            sinks = [s for s in self._sinks if self._sink_from.get(id(s), 0) <= generation]
        for sink in sinks:
            try:
                sink.send(output, t_capture)
            except Exception as err:
                with self._lock:
                    self._sink_errors[id(sink)] = f"error: {err}"
                self._report("sink", err)
            else:
                if self._sink_errors:
                    with self._lock:
                        self._sink_errors.pop(id(sink), None)

    def _emit_stats(self) -> None:
        with self._lock:
            observers = list(self._stats_observers)
        if not observers:
            return
        snapshot = self.stats()
        for cb in observers:
            try:
                cb(snapshot)
            except Exception:
                log.exception("stats observer failed")
