"""Rolling performance figures of a live session (fps, per-stage ms, latency percentiles)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

STAGES = ("capture", "tracking", "engine", "output")


@dataclass(frozen=True)
class Stats:
    """A snapshot of a running session.

    fps:          frames delivered to the sinks per second over the window.
    stage_ms:     median ms per stage over the window: capture (age of the frame when
                  processing starts: waiting in the latest-frame slot), tracking, engine,
                  output (sinks and frame observers).
    latency_ms_*: capture timestamp -> all sinks done, p50/p95 over the window.
    dropped:      stale frames replaced in the latest-frame slot before being processed.
    frames:       frames processed since start.
    """

    fps: float = 0.0
    stage_ms: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    latency_ms_p50: float = 0.0
    latency_ms_p95: float = 0.0
    dropped: int = 0
    frames: int = 0
    engine: str | None = None
    device: str | None = None
    sinks: dict[str, str] = field(default_factory=dict)
    status: str = "starting"

    def line(self) -> str:
        """One line of text for a log or a status bar."""
        stages = " ".join(f"{k} {v:.1f}" for k, v in self.stage_ms.items())
        return (f"{self.fps:5.1f} fps | latency p50 {self.latency_ms_p50:.0f} ms p95 {self.latency_ms_p95:.0f} ms"
                f" | ms: {stages} | frames {self.frames} dropped {self.dropped} | {self.status}")


class StatsWindow:
    """Per-frame measurements over the last ``window`` frames (used by the inference thread only)."""

    def __init__(self, window: int = 120) -> None:
        self._stages = {name: deque(maxlen=window) for name in STAGES}
        self._latency: deque[float] = deque(maxlen=window)
        self._done: deque[float] = deque(maxlen=window)
        self.frames = 0

    def add(self, stage_ms: dict[str, float], latency_ms: float, t_done: float) -> None:
        for name, values in self._stages.items():
            values.append(stage_ms.get(name, 0.0))
        self._latency.append(latency_ms)
        self._done.append(t_done)
        self.frames += 1

    def fps(self) -> float:
        if len(self._done) < 2:
            return 0.0
        span = self._done[-1] - self._done[0]
        return (len(self._done) - 1) / span if span > 0 else 0.0

    def snapshot(self, **extra) -> Stats:
        if self._latency:
            p50, p95 = np.percentile(np.fromiter(self._latency, float), [50, 95])
        else:
            p50 = p95 = 0.0
        stage_ms = {name: round(float(np.median(v)), 3) if v else 0.0 for name, v in self._stages.items()}
        return Stats(fps=round(self.fps(), 2), stage_ms=stage_ms, latency_ms_p50=round(float(p50), 2),
                     latency_ms_p95=round(float(p95), 2), frames=self.frames, **extra)
