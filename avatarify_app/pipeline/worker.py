"""The inference-loop part of a session: the ``avatarify-infer`` thread.

It owns the tracker, the applied options, the output policy (the held frame, the cards)
and the frame statistics. It builds the engine (through the engine host) at start, runs the
user's commands between frames, processes the newest frame from the capture part (tracking,
pose match and hint, calibration, animation, the output policy in ``session.py``'s
docstring), hands the output to the outputs part and the frame observers, and emits stats
every ``stats_interval``. The other parts are passed in; it calls only their public methods.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from avatarify_app.config import CropConfig, LiveOptions, TrackingConfig
from avatarify_app.frames import check_frame
from avatarify_app.pipeline.calibration import ReferenceKeeper
from avatarify_app.pipeline.capture import Capture
from avatarify_app.pipeline.engine_host import EngineHost
from avatarify_app.pipeline.events import FrameEvent, placeholder_frame
from avatarify_app.pipeline.observers import Observers
from avatarify_app.pipeline.outputs import Outputs
from avatarify_app.pipeline.slot import EMPTY, Ended
from avatarify_app.pipeline.stats import Stats, StatsWindow
from avatarify_app.tracking.crop import recrop
from avatarify_app.tracking.pose import EXPRESSION_HINT

log = logging.getLogger(__name__)

ENDED_FLUSH_S = 5.0  # at the end of a file, how long the outputs get to send what they hold



class InferenceLoop:
    """Owns the inference thread, its stop event, the command queue, the tracker and the output policy."""

    def __init__(self, *, capture: Capture, host: EngineHost, keeper: ReferenceKeeper, outputs: Outputs,
                 observers: Observers, options: LiveOptions, tracking: TrackingConfig,
                 tracker_factory: Callable, pose_matcher: Callable, pose_hinter: Callable,
                 stats: Callable[[], Stats], stats_interval: float, stats_window: int) -> None:
        self._capture = capture
        self._host = host
        self._keeper = keeper
        self._outputs = outputs
        self._observers = observers
        self._report = observers.report
        self._snapshot = stats
        self._tracking = tracking
        self._tracker_factory = tracker_factory
        self._pose_matcher = pose_matcher
        self._pose_hinter = pose_hinter
        self.stats_interval = stats_interval
        self._stats_window = stats_window

        self._lock = threading.Lock()
        self._commands: deque[Callable[[], None]] = deque()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._ended = threading.Event()
        self._thread: threading.Thread | None = None

        self._options = options  # applied (the session keeps the requested ones)
        self._tracker: Any = None
        self._held: np.ndarray | None = None
        self._cards: dict[tuple[str, int], np.ndarray] = {}
        self._window = StatsWindow(stats_window)
        self._status = "starting"

    # ------------------------------------------------------------------ queries
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def status(self) -> str:
        return self._status

    @property
    def ready(self) -> threading.Event:
        return self._ready

    @property
    def ended(self) -> threading.Event:
        return self._ended

    def window(self) -> StatsWindow:
        return self._window

    # ---------------------------------------------------------------- lifecycle
    def post(self, command: Callable[[], None]) -> None:
        """Run ``command`` on the inference thread before the next frame (in order)."""
        with self._lock:
            self._commands.append(command)

    def start(self) -> None:
        self._stop.clear()
        self._ready.clear()
        self._ended.clear()
        self._window = StatsWindow(self._stats_window)
        self._thread = threading.Thread(target=self._run, name="avatarify-infer", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        self._stop.set()

    def join(self, deadline: float) -> bool:
        t = self._thread
        if t is None or t is threading.current_thread():
            return True  # stop() from an observer: the thread ends after this callback
        t.join(max(0.0, deadline - time.monotonic()))
        if t.is_alive():
            log.warning("thread %s did not stop in time", t.name)
            return False
        return True

    # --------------------------------------------- commands (inference thread)
    def set_avatar(self, spec) -> None:
        if self._host.set_avatar(spec, self._avatar_tracking()):
            self._held = None
            avatar = self._host.avatar
            self._keeper.avatar_changed(avatar.path if avatar else None, self._host.engine, self._options.mirror)

    def set_engine(self, config) -> None:
        if self._host.set_engine(config, self._options.motion, self._keeper.reference):
            self._held = None

    def recalibrate(self, request: int) -> None:
        self._keeper.clear("recalibrate", request, self._host.engine, self._options.mirror)

    def auto_calibrate(self, n_frames: int, request: int) -> None:
        self._keeper.start_auto(n_frames, request, comparable=self._host.avatar_landmarks is not None)

    def set_reference(self, crop: np.ndarray, landmarks: np.ndarray | None, request: int) -> None:
        self._keeper.set(crop, landmarks, "set", request, self._host.engine, self._options.mirror)

    def apply_options(self, new: LiveOptions) -> None:
        old, self._options = self._options, new
        if new.motion != old.motion:
            self._host.set_motion(new.motion)
        if new.crop != old.crop and self._tracker is not None:
            try:
                self._tracker.set_crop(new.crop)
            except Exception as err:
                self._report("tracking", err, key="set_crop")
        if new.mirror != old.mirror:
            # The picture flips: smoothing restarts and the reference must be taken again.
            self.reset_tracking()
            self._keeper.mirror_changed(self._host.engine, new.mirror)

    def reset_tracking(self) -> None:
        if self._tracker is not None:
            try:
                self._tracker.reset()
            except Exception as err:
                self._report("tracking", err, key="reset")

    def set_controls(self, values: dict) -> None:
        self._host.set_controls(values)

    # ------------------------------------------------------------------ thread
    def _run(self) -> None:
        try:
            self._setup()
            next_stats = time.perf_counter() + self.stats_interval
            while not self._stop.is_set():
                self._run_commands()
                item = self._capture.take(timeout=0.05)
                if isinstance(item, Ended):
                    self._outputs.wait_idle(time.monotonic() + ENDED_FLUSH_S, self._stop)
                    self._ended.set()
                elif item is not EMPTY:
                    self._process(item)
                now = time.perf_counter()
                if now >= next_stats:
                    next_stats = now + self.stats_interval
                    self._emit_stats()
        finally:
            self._teardown()

    def _setup(self) -> None:
        try:
            try:
                self._tracker = self._tracker_factory(replace(self._tracking, crop=self._options.crop))
            except Exception as err:
                self._report("tracking", err, key="build")
            self._host.start(self._options.motion, self._keeper.reference)
            self._run_commands()  # what was asked before start (the avatar first) counts as ready
        finally:
            self._ready.set()

    def _teardown(self) -> None:
        self._emit_stats()
        self._host.close()
        tracker, self._tracker = self._tracker, None
        if tracker is not None:
            try:
                tracker.close()
            except Exception as err:
                self._report("tracking", err, key="close")

    def _run_commands(self) -> None:
        while True:
            with self._lock:
                if not self._commands:
                    return
                command = self._commands.popleft()
            try:
                command()
            except Exception:  # each part reports its own failures; this is a bug
                log.exception("session command failed")

    def _avatar_tracking(self) -> TrackingConfig:
        """Portraits are framed the default way at the crop size: the zoom and offsets of
        ``LiveOptions.crop`` frame the driving face (to match the portrait), not the portrait."""
        return replace(self._tracking, crop=CropConfig(size=self._options.crop.size))

    def _card(self, text: str) -> np.ndarray:
        size = self._host.size or 256
        key = (text, size)
        if key not in self._cards:
            self._cards[key] = placeholder_frame(text, size)
        return self._cards[key]

    def _held_or(self, text: str) -> np.ndarray:
        return self._held if self._held is not None else self._card(text)

    def _process(self, item) -> None:
        t_start = time.perf_counter()
        t_capture = item.t_capture
        opts = self._options
        frame = np.ascontiguousarray(item.frame[:, ::-1]) if opts.mirror else item.frame
        result = None
        if self._tracker is not None:
            try:
                result = self._tracker.process(frame, t_capture)
            except Exception as err:
                self._report("tracking", err, key="process")
        t_tracked = time.perf_counter()

        crop = lms = box = cam_lms = None
        score = hint = None
        host, keeper = self._host, self._keeper
        engine = host.engine
        if result is not None:
            box, cam_lms = result.box, result.face.landmarks
            crop, lms = result.crop, result.landmarks
            if engine is not None:
                crop, lms = recrop(frame, result.box, crop, lms, int(engine.size))
            avatar_lms = host.avatar_landmarks
            if avatar_lms is not None and lms is not None:
                try:
                    score = float(self._pose_matcher(avatar_lms, lms))
                    if score < keeper.min_match:
                        hint = self._pose_hinter(avatar_lms, lms) or EXPRESSION_HINT
                except Exception as err:
                    self._report("tracking", err, key="pose")

        debug: dict[str, np.ndarray] = {}
        timings: dict[str, float] = {}
        if opts.passthrough:
            status, output = "passthrough", frame
        elif engine is None:
            status, output = "no_engine", self._card("no engine")
        elif host.avatar is None:
            status, output = "no_avatar", self._card("no avatar")
        elif result is None:
            status, output = "no_face", self._held_or("no face")
        else:
            status, output = "ok", None
            if keeper.calibrating:
                keeper.auto_step(crop, lms, score, hint, engine, opts.mirror)
                if keeper.calibrating:
                    status = "calibrating"
                    if not engine.has_reference():
                        output = self._held_or("calibrating")
            if output is None:
                output, status = self._animate(engine, crop, lms, status, score, opts.mirror)
                timings = host.timings()
            if status != "error" and opts.debug:
                try:
                    debug = dict(engine.debug_info())
                except Exception as err:
                    self._report("engine", err, key="debug_info")
        t_animated = time.perf_counter()

        self._outputs.deliver(output, t_capture, item.generation, wait=not item.realtime, cancel=self._stop)
        event = FrameEvent(item.index, t_capture, frame, crop, box, cam_lms, output, status, score, debug,
                           host.avatar_crop, hint)
        self._observers.notify("frame", event)
        t_done = time.perf_counter()
        self._status = status
        self._window.add(
            {"capture": (t_start - t_capture) * 1000, "tracking": (t_tracked - t_start) * 1000,
             "engine": (t_animated - t_tracked) * 1000, "output": (t_done - t_animated) * 1000},
            (t_done - t_capture) * 1000, t_done, timings)

    def _animate(self, engine, crop: np.ndarray, lms: np.ndarray | None, status: str, score: float | None,
                 mirror: bool):
        had_reference = engine.has_reference()
        try:
            out = engine.predict(crop, lms)
            check_frame(out, "engine output")
        except Exception as err:
            self._report("engine", err, key="predict")
            return self._held_or("engine error"), "error"
        if not had_reference and engine.has_reference():
            # The engine took this frame as its reference (it had none). An engine that keeps
            # none (e.g. absolute motion) announces nothing.
            self._keeper.engine_took(crop, lms, score, mirror)
        self._held = out
        return out, status

    def _emit_stats(self) -> None:
        observers = self._observers.current("stats")
        if not observers:
            return
        self._observers.call("stats", observers, self._snapshot())
