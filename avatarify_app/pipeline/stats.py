"""Rolling performance figures of a live session (fps, per-stage ms, latency, each output's state)."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

import numpy as np

TIMING_STAGES = ("capture", "tracking", "engine", "output")
SINK_STATES = ("ok", "slow", "error")


@dataclass(frozen=True)
class SinkStats:
    """One output's state (see ``outputs.SinkRunner``).

    state:      "ok", "slow" (its sends take longer than the frames arrive, or one send is
                stuck) or "error" (its last send failed; ``message`` says why).
    frames:     frames it took since it was added.
    dropped:    frames it never got because it was busy (newest frame wins; a recorder
                keeps a few in a queue first).
    send_ms:    median time of one send over its last frames.
    latency_ms: median capture -> sent.
    detail:     the sink's own ``status`` text (e.g. "1280x720 @30 fps via v4l2loopback").
    """

    name: str
    state: str = "ok"
    frames: int = 0
    dropped: int = 0
    send_ms: float = 0.0
    latency_ms: float = 0.0
    detail: str = ""
    message: str = ""

    def text(self) -> str:
        """One phrase for a status bar: the detail when fine, what is wrong otherwise."""
        if self.state == "error":
            return f"error: {self.message}"
        if self.state == "slow":
            return f"slow: {self.send_ms:.0f} ms per frame, {self.dropped} dropped"
        dropped = f", {self.dropped} dropped" if self.dropped else ""
        return f"{self.detail or 'ok'}{dropped}"


@dataclass(frozen=True)
class Stats:
    """A snapshot of a running session.

    fps:          frames processed (handed to the outputs) per second over the window.
    stage_ms:     median ms per stage over the window: capture (age of the frame when
                  processing starts: waiting in the latest-frame slot), tracking, engine,
                  output (handing the frame to the outputs and the frame observers; the
                  outputs send on their own threads); plus the engine's own stages when it
                  reports them (``Engine.timings()``, e.g. "network" and "server" of a remote
                  engine; a name that clashes with one of ours gets an "engine." prefix).
    latency_ms_*: capture timestamp -> handed to the outputs, p50/p95 over the window (each
                  output's own capture -> sent latency is in ``sink_stats``).
    dropped:      real-time frames replaced in the latest-frame slot before being processed.
    frames:       frames processed since start.
    engine_note:  why this engine runs (``engines.REGISTRY.choose``'s reasons: what auto
                  chose and what it skipped), or None.
    sinks:        output name -> one phrase (``SinkStats.text``): its detail, or "slow: ..." /
                  "error: ..." when it is slow or failed.
    sink_stats:   output name -> ``SinkStats``.
    """

    fps: float = 0.0
    stage_ms: dict[str, float] = field(default_factory=lambda: dict.fromkeys(TIMING_STAGES, 0.0))
    latency_ms_p50: float = 0.0
    latency_ms_p95: float = 0.0
    dropped: int = 0
    frames: int = 0
    engine: str | None = None
    device: str | None = None
    sinks: dict[str, str] = field(default_factory=dict)
    status: str = "starting"
    engine_note: str | None = None
    sink_stats: dict[str, SinkStats] = field(default_factory=dict)

    def sink_problems(self) -> list[SinkStats]:
        """The outputs that are slow or failed."""
        return [s for s in self.sink_stats.values() if s.state != "ok"]

    def line(self) -> str:
        """One line of text for a log or a status bar (names any slow or failed output)."""
        stages = " ".join(f"{k} {v:.1f}" for k, v in self.stage_ms.items())
        text = (f"{self.fps:5.1f} fps | latency p50 {self.latency_ms_p50:.0f} ms p95 {self.latency_ms_p95:.0f} ms"
                f" | ms: {stages} | frames {self.frames} dropped {self.dropped} | {self.status}")
        for s in self.sink_problems():
            text += f" | output {s.name} {s.text()}"
        return text


class StatsWindow:
    """Per-frame measurements over the last ``window`` frames (written by the inference
    thread, read by any: guarded by its own lock)."""

    def __init__(self, window: int = 120) -> None:
        self._window = window
        self._lock = threading.Lock()
        self._stages: dict[str, deque[float]] = {name: deque(maxlen=window) for name in TIMING_STAGES}
        self._extra_seen: dict[str, int] = {}  # engine stage -> frame number it was last reported
        self._latency: deque[float] = deque(maxlen=window)
        self._done: deque[float] = deque(maxlen=window)
        self.frames = 0

    def add(self, stage_ms: dict[str, float], latency_ms: float, t_done: float,
            extra_ms: dict[str, float] | None = None) -> None:
        """One frame: our stages, its latency, when it was done and the engine's own stages."""
        with self._lock:
            for name in TIMING_STAGES:
                self._stages[name].append(stage_ms.get(name, 0.0))
            for name, ms in (extra_ms or {}).items():
                key = f"engine.{name}" if name in TIMING_STAGES else str(name)
                self._stages.setdefault(key, deque(maxlen=self._window)).append(float(ms))
                self._extra_seen[key] = self.frames
            self._latency.append(latency_ms)
            self._done.append(t_done)
            self.frames += 1

    def fps(self) -> float:
        with self._lock:
            return self._fps()

    def _fps(self) -> float:
        if len(self._done) < 2:
            return 0.0
        span = self._done[-1] - self._done[0]
        return (len(self._done) - 1) / span if span > 0 else 0.0

    def snapshot(self, **extra) -> Stats:
        with self._lock:
            latency = np.fromiter(self._latency, float)
            recent = self.frames - self._window
            stages = {name: np.fromiter(v, float) for name, v in self._stages.items()
                      if name in TIMING_STAGES or self._extra_seen.get(name, -1) >= recent}
            fps, frames = self._fps(), self.frames
        p50, p95 = np.percentile(latency, [50, 95]) if len(latency) else (0.0, 0.0)
        stage_ms = {name: round(float(np.median(v)), 3) if len(v) else 0.0 for name, v in stages.items()}
        return Stats(fps=round(fps, 2), stage_ms=stage_ms, latency_ms_p50=round(float(p50), 2),
                     latency_ms_p95=round(float(p95), 2), frames=frames, **extra)
