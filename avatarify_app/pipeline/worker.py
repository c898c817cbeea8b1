"""The inference side of a session: the ``avatarify-infer`` thread.

It owns the tracker, the engine and the device: builds them at start, runs the user's
commands between frames, processes the newest frame from the latest-frame slot (tracking,
pose match, calibration, animation, the output policy in ``session.py``'s docstring),
feeds the sinks and the frame observers, and emits stats every ``stats_interval``.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from avatarify_app.frames import check_frame
from avatarify_app.pipeline.events import FrameEvent, placeholder_frame
from avatarify_app.pipeline.slot import EMPTY, END
from avatarify_app.tracking.crop import to_size


class InferenceWorker:
    """``Session``'s inference thread (a mixin: it works on the session's own state)."""

    def _infer_loop(self) -> None:
        try:
            self._setup()
            next_stats = time.perf_counter() + self.stats_interval
            while not self._stop.is_set():
                self._run_commands()
                item = self._slot.take(timeout=0.05)
                if item is not EMPTY and item[0] == self._generation:  # else: from a replaced source
                    if item[1] is END:
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
                crop, lms = to_size(crop, lms, engine.size)
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
        self._observers.notify("frame", event)
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
            self._take_first_reference(crop, lms, score)
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
        observers = self._observers.current("stats")
        if not observers:
            return
        self._observers.call("stats", observers, self.stats())
