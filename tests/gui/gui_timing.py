"""Event-loop delay measurement shared by the GUI responsiveness tests."""

from __future__ import annotations

from PySide6.QtCore import QElapsedTimer, Qt, QTimer


def timer_delays(qtbot, until, minimum_ms: int) -> list[float]:
    """Lateness (ms) of a 10 ms precise timer's ticks, for at least ``minimum_ms`` and until ``until()``."""
    delays: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.elapsed()]
    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)

    def tick() -> None:
        now = clock.elapsed()
        delays.append(now - last[0] - 10)
        last[0] = now

    timer.timeout.connect(tick)
    timer.start(10)
    qtbot.wait(minimum_ms)
    qtbot.waitUntil(until, timeout=30000)
    timer.stop()
    return delays
