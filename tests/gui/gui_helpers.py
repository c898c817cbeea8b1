"""Waiting on the window in GUI tests."""

from __future__ import annotations

TIMEOUT = 30000  # a bound for conditions to come true, generous for a loaded machine


def wait_frames(qtbot, window, n: int = 5) -> None:
    """Until ``n`` more avatar frames were painted."""
    view = window.live_view.avatar_view
    start = view.frames_painted
    qtbot.waitUntil(lambda: view.frames_painted >= start + n, timeout=TIMEOUT)


def press(qtbot, window, key) -> None:
    window.activateWindow()
    qtbot.keyClick(window, key)
