"""The outputs part of a session: each sink on its own thread, so a slow or failing output never
stalls inference or the other outputs.

Every sink gets a ``SinkRunner``: a thread (``avatarify-sink-<name>``) with its own stop
event, fed through a small hand-over owned by the runner:

- a sink's ``queue_size`` (default 1) bounds what waits for it. With 1 the newest frame
  wins: a frame still waiting is replaced and counted as dropped (virtual camera, preview).
  A recorder keeps a few (``RecorderSink.queue_size``) so it drops nothing at normal speed;
  when even that is full the oldest waiting frame is dropped and counted.
- frames of a non-real-time source (an unpaced video file: every frame matters) are never
  dropped: the inference thread waits for room instead, as the capture thread waits for it.

``Outputs`` holds the runners. Stopping (or removing a sink) waits for the send in progress,
sends what a queue holds (a recording keeps its last frames; a newest-frame-wins slot is
dropped) and joins each thread; the sinks stay registered, so ``start`` feeds them again.
Only ``close`` closes them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from avatarify_app.pipeline.sinks import Sink
from avatarify_app.pipeline.stats import SinkStats

log = logging.getLogger(__name__)

SLOW_BUSY_S = 0.5  # one send taking longer than this makes a sink "slow" at once
SLOW_SEND_MS = 20.0  # ... and so does a median send above this and above the frame interval
_SEND_WINDOW = 30

Report = Callable[..., bool]  # report(stage, error, key=...) -> whether it was told


class SinkRunner:
    """One sink, its thread and its bounded hand-over (see the module docstring)."""

    def __init__(self, sink: Sink, report: Report, from_generation: int = 0) -> None:
        self.sink = sink
        self.name = str(getattr(sink, "name", type(sink).__name__))
        self.from_generation = from_generation
        self.depth = max(1, int(getattr(sink, "queue_size", 1) or 1))
        self._report = report
        self._cond = threading.Condition()
        self._queue: deque[tuple[np.ndarray, float]] = deque()
        self._stop = threading.Event()  # leave now (after the send in progress)
        self._draining = False  # leave once the queue is empty
        self._thread: threading.Thread | None = None
        self._busy_since: float | None = None
        self._sends: deque[float] = deque(maxlen=_SEND_WINDOW)
        self._latency: deque[float] = deque(maxlen=_SEND_WINDOW)
        self.frames = 0  # taken by the sink (sent or failed)
        self.dropped = 0
        self.error: str | None = None  # the last send's failure, cleared by a good send

    # ---------------------------------------------------------------- lifecycle
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        with self._cond:
            self._draining = False
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"avatarify-sink-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, deadline: float) -> bool:
        """End the thread after the send in progress: a queue (``queue_size`` > 1: a recording)
        is sent first, a single waiting frame (newest frame wins: a live picture) is dropped.
        By ``deadline`` (monotonic) at the latest. True when the thread ended."""
        t = self._thread
        with self._cond:
            if self.depth == 1 and self._queue:
                self._queue.clear()
                self.dropped += 1
            self._draining = True
            self._cond.notify_all()
        if t is None or t is threading.current_thread():
            return True
        t.join(max(0.0, deadline - time.monotonic()))
        if t.is_alive():
            self._stop.set()
            with self._cond:
                self._cond.notify_all()
            t.join(0.1)
        if t.is_alive():
            log.warning("output %s is stuck in a send; its thread is left behind", self.name)
            return False
        return True

    # ----------------------------------------------------------------- feeding
    def offer(self, frame: np.ndarray, t_capture: float, wait: bool, cancel: threading.Event) -> None:
        """Queue one frame. ``wait``: wait for room (until ``cancel``) instead of dropping."""
        with self._cond:
            while wait and len(self._queue) >= self.depth and self.running and not cancel.is_set():
                self._cond.wait(0.05)
            if len(self._queue) >= self.depth:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append((frame, t_capture))
            self._cond.notify_all()

    def wait_idle(self, deadline: float, cancel: threading.Event | None = None) -> bool:
        """Wait until everything queued was sent (or ``deadline``/``cancel``)."""
        with self._cond:
            while (self._queue or self._busy_since is not None) and self.running:
                left = deadline - time.monotonic()
                if left <= 0 or (cancel is not None and cancel.is_set()):
                    return False
                self._cond.wait(min(left, 0.05))
            return True

    # ------------------------------------------------------------------ thread
    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                while not self._queue and not self._draining and not self._stop.is_set():
                    self._cond.wait(0.1)
                if self._stop.is_set() or not self._queue:
                    return  # stopped, or drained
                frame, t_capture = self._queue.popleft()
                self._busy_since = time.perf_counter()
                self._cond.notify_all()
            self._send(frame, t_capture)

    def _send(self, frame: np.ndarray, t_capture: float) -> None:
        started = self._busy_since or time.perf_counter()
        try:
            self.sink.send(frame, t_capture)
        except Exception as err:
            self.error = " ".join(str(getattr(err, "message", err)).split()) or type(err).__name__
            self._report("sink", err, key=self.name)
        else:
            self.error = None
        done = time.perf_counter()
        with self._cond:
            self._sends.append((done - started) * 1000)
            self._latency.append((done - t_capture) * 1000)
            self.frames += 1
            self._busy_since = None
            self._cond.notify_all()

    # ------------------------------------------------------------------- stats
    def snapshot(self, frame_ms: float) -> SinkStats:
        """This output's state; ``frame_ms``: how often frames arrive (0 = unknown)."""
        now = time.perf_counter()
        with self._cond:
            sends = list(self._sends)
            latency = list(self._latency)
            busy = None if self._busy_since is None else now - self._busy_since
            frames, dropped, error = self.frames, self.dropped, self.error
        send_ms = float(np.median(sends)) if sends else 0.0
        if busy is not None and busy > SLOW_BUSY_S:
            send_ms = max(send_ms, busy * 1000)
        slow = (busy is not None and busy > SLOW_BUSY_S) or (send_ms > SLOW_SEND_MS and send_ms > frame_ms)
        state = "error" if error else "slow" if slow else "ok"
        try:
            detail = str(getattr(self.sink, "status", "") or "")
        except Exception as err:  # a sink's status property failing must not break the stats
            detail = f"status unavailable ({type(err).__name__})"
        return SinkStats(self.name, state, frames, dropped, round(send_ms, 2),
                         round(float(np.median(latency)), 2) if latency else 0.0, detail, error or "")


class Outputs:
    """The session's sinks, each behind a ``SinkRunner``. Thread-safe."""

    def __init__(self, sinks: tuple[Sink, ...] | list[Sink], report: Report) -> None:
        self._report = report
        self._lock = threading.Lock()
        self._runners: list[SinkRunner] = [SinkRunner(s, report) for s in sinks]
        self._running = False

    @property
    def sinks(self) -> list[Sink]:
        with self._lock:
            return [r.sink for r in self._runners]

    def add(self, sink: Sink, from_generation: int = 0) -> None:
        """Feed ``sink`` from the next frame of ``from_generation`` or later."""
        runner = SinkRunner(sink, self._report, from_generation)
        with self._lock:
            self._runners.append(runner)
            if self._running:
                runner.start()

    def remove(self, sink: Sink, timeout: float = 5.0) -> None:
        """Stop feeding ``sink``: what is queued for it is still sent, its thread is joined;
        the caller closes it."""
        with self._lock:
            runner = next((r for r in self._runners if r.sink is sink), None)
            if runner is None:
                return
            self._runners.remove(runner)
        runner.stop(time.monotonic() + timeout)

    def start(self) -> None:
        with self._lock:
            self._running = True
            for r in self._runners:
                r.start()

    def stop(self, deadline: float) -> None:
        """Drain and join every runner (the sinks stay registered and open)."""
        with self._lock:
            self._running = False
            runners = list(self._runners)
        for r in runners:
            r.stop(deadline)

    def close(self, deadline: float) -> None:
        """``stop``, then close every sink and forget it."""
        self.stop(deadline)
        with self._lock:
            runners, self._runners = self._runners, []
        for r in runners:
            try:
                r.sink.close()
            except Exception as err:
                self._report("sink", err, key=r.name)

    def deliver(self, frame: np.ndarray, t_capture: float, generation: int, *, wait: bool,
                cancel: threading.Event) -> None:
        """Hand ``frame`` to every output that takes frames of ``generation`` (never blocks
        unless ``wait``: a frame of a non-real-time source)."""
        with self._lock:
            runners = [r for r in self._runners if r.from_generation <= generation]
        for r in runners:
            r.offer(frame, t_capture, wait, cancel)

    def wait_idle(self, deadline: float, cancel: threading.Event | None = None) -> bool:
        """Wait until every output sent what it was given (the end of a file)."""
        with self._lock:
            runners = list(self._runners)
        return all([r.wait_idle(deadline, cancel) for r in runners])

    def snapshot(self, frame_ms: float) -> dict[str, SinkStats]:
        with self._lock:
            runners = list(self._runners)
        return {r.name: r.snapshot(frame_ms) for r in runners}
