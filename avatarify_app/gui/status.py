"""The status bar's permanent part: a busy bar, an output that is slow or failed, fps, latency,
dropped frames and the engine line.

The engine line names the engine that runs and its device, the engine's own stage timings
when the stats carry them (e.g. network and server ms of a remote engine), and why the
engine was chosen when ``auto`` chose it.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar

from avatarify_app.gui.state import AppState, RunningEngine
from avatarify_app.pipeline.stats import TIMING_STAGES

NOTE_CHARS = 60  # of the auto-choice reason in the status bar (every reason is in its tooltip)


def engine_timings(stats: Any) -> dict[str, float]:
    """The engine's own stage timings in ``stats`` ({stage: ms}): the ``stage_ms`` entries that are
    not the session's own stages (``Engine.timings()``, e.g. "network" and "server")."""
    stage_ms = getattr(stats, "stage_ms", None) or {}
    return {str(k): float(v) for k, v in stage_ms.items() if k not in TIMING_STAGES}


def engine_line(stats: Any, runtime: RunningEngine, limit: int = NOTE_CHARS) -> str:
    """"engine: NAME | DEVICE | its stage timings | why auto chose it" (the reason cut to ``limit``)."""
    parts = [f"engine: {stats.engine or '-'}", str(stats.device or "-")]
    timings = engine_timings(stats)
    if timings:
        parts.append(", ".join(f"{k} {v:.0f} ms" for k, v in timings.items()))
    if runtime.note:
        parts.append(runtime.note if len(runtime.note) <= limit else runtime.note[: limit - 3] + "...")
    return " | ".join(parts)


class StatusPanel:
    """Owns the permanent widgets it adds to ``bar``; ``show_stats`` updates them."""

    def __init__(self, bar: QStatusBar, state: AppState) -> None:
        self.state = state
        self.fps_label = QLabel("fps -")
        self.latency_label = QLabel("latency -")
        self.latency_label.setToolTip("Latency from the camera to the outputs: median (95th percentile).")
        self.dropped_label = QLabel("dropped -")
        self.engine_label = QLabel("engine -")
        self.outputs_label = QLabel("")
        self.outputs_label.setStyleSheet("color: #d44;")
        self.outputs_label.setVisible(False)
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setMaximumWidth(90)
        self.busy.setVisible(False)
        self.busy.setToolTip("Working...")
        for w in (self.busy, self.outputs_label, self.fps_label, self.latency_label, self.dropped_label,
                  self.engine_label):
            bar.addPermanentWidget(w)
        state.busy_changed.connect(lambda n: self.busy.setVisible(n > 0))

    def show_stats(self, stats: Any) -> None:
        self.fps_label.setText(f"{stats.fps:.1f} fps")
        self.latency_label.setText(f"{stats.latency_ms_p50:.0f} ms (p95 {stats.latency_ms_p95:.0f})")
        self.dropped_label.setText(f"dropped {stats.dropped}")
        runtime = self.state.runtime
        self.engine_label.setText(engine_line(stats, runtime))
        sinks = getattr(stats, "sinks", None) or {}
        tip = [engine_line(stats, runtime, limit=10**6)]
        if runtime.detail:
            tip.append(f"auto: {runtime.detail}")
        tip += [f"output {name}: {text}" for name, text in sinks.items()]
        self.engine_label.setToolTip("\n".join(tip))
        problems = stats.sink_problems() if hasattr(stats, "sink_problems") else []
        text = " | ".join(f"output {p.name} {p.text()}" for p in problems)
        if text != self.outputs_label.text():
            self.outputs_label.setText(text)
            self.outputs_label.setVisible(bool(text))
