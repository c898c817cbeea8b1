"""The status bar's permanent part: a busy bar, fps, latency, dropped frames and the engine line.

The engine line names the engine that runs and its device, the engine's own stage timings
when the stats carry them (e.g. network and server ms of a remote engine), and why the
engine was chosen when ``auto`` chose it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar

from avatarify_app.gui.state import AppState, Runtime

SESSION_STAGES = ("capture", "tracking", "engine", "output")  # the session's own stages in Stats.stage_ms
ENGINE_TIMING_FIELDS = ("engine_ms", "engine_stages", "engine_timings")  # where stats may carry them


def engine_timings(stats: Any) -> dict[str, float]:
    """The engine's own stage timings in ``stats`` ({stage: ms}), if it reports any."""
    for name in ENGINE_TIMING_FIELDS:
        value = getattr(stats, name, None)
        if isinstance(value, Mapping) and value:
            return {str(k): float(v) for k, v in value.items()}
    stage_ms = getattr(stats, "stage_ms", None) or {}
    return {str(k): float(v) for k, v in stage_ms.items() if k not in SESSION_STAGES}


def engine_line(stats: Any, runtime: Runtime) -> str:
    parts = [f"engine: {stats.engine or '-'}", str(stats.device or "-")]
    timings = engine_timings(stats)
    if timings:
        parts.append(", ".join(f"{k} {v:.0f} ms" for k, v in timings.items()))
    if runtime.note:
        parts.append(runtime.note)
    return " | ".join(parts)


class StatusPanel:
    """Owns the permanent widgets it adds to ``bar``; ``show_stats`` updates them."""

    def __init__(self, bar: QStatusBar, state: AppState) -> None:
        self.state = state
        self.fps_label = QLabel("fps -")
        self.latency_label = QLabel("latency -")
        self.dropped_label = QLabel("dropped -")
        self.engine_label = QLabel("engine -")
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setMaximumWidth(90)
        self.busy.setVisible(False)
        self.busy.setToolTip("Working...")
        for w in (self.busy, self.fps_label, self.latency_label, self.dropped_label, self.engine_label):
            bar.addPermanentWidget(w)
        state.busy_changed.connect(lambda n: self.busy.setVisible(n > 0))

    def show_stats(self, stats: Any) -> None:
        self.fps_label.setText(f"{stats.fps:.1f} fps")
        self.latency_label.setText(f"latency {stats.latency_ms_p50:.0f} ms (p95 {stats.latency_ms_p95:.0f})")
        self.dropped_label.setText(f"dropped {stats.dropped}")
        line = engine_line(stats, self.state.runtime)
        self.engine_label.setText(line)
        sinks = getattr(stats, "sinks", None) or {}
        tip = [line] + [f"{name}: {text}" for name, text in sinks.items()]
        self.engine_label.setToolTip("\n".join(tip))
