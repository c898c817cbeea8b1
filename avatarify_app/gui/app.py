"""Build the QApplication and the main window; optional screenshot-and-quit for scripts."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from avatarify_app.config import EngineConfig, VirtualCameraConfig
from avatarify_app.gui.main_window import MainWindow
from avatarify_app.gui.settings import AppSettings
from avatarify_app.qt_check import check_qt_can_start

log = logging.getLogger(__name__)


def use_own_qt_plugins() -> None:
    """Undo opencv-python's import-time QT_QPA_* variables, which point Qt at cv2's own
    (Qt 5, xcb-only) plugins and make PySide6 fail to start on X11."""
    for var in ("QT_QPA_PLATFORM_PLUGIN_PATH", "QT_QPA_FONTDIR"):
        value = os.environ.get(var, "")
        if value and f"{os.sep}cv2{os.sep}" in value:
            del os.environ[var]


def run_app(
    *,
    camera: str | None = None,
    avatar: str | None = None,
    engine_config: EngineConfig | None = None,
    virtual_camera: bool = True,
    vcam_config: VirtualCameraConfig | None = None,
    mirror: bool | None = None,
    screenshot: str | None = None,
    quit_after: float | None = None,
    min_frames: int = 30,
    on_screenshot: Callable[[Path, int], None] | None = None,
) -> int:
    """Open the app; returns the exit code.

    screenshot/quit_after: once ``min_frames`` frames were shown (or ``quit_after``
    seconds passed), save a PNG of the window to ``screenshot`` and quit.
    on_screenshot(path, frames_shown): called once the PNG is saved (the command reports it).
    """
    use_own_qt_plugins()
    app = QApplication.instance()
    if app is None:
        check_qt_can_start()  # missing X11 libraries: our message with the fix, not Qt's abort
        app = QApplication(sys.argv[:1])
    app.setApplicationName("Avatarify")
    app.setOrganizationName("avatarify_app")
    window = MainWindow(AppSettings(), camera=camera, avatar=avatar, engine_config=engine_config,
                        virtual_camera=virtual_camera, vcam_config=vcam_config, mirror=mirror)
    window.show()
    QTimer.singleShot(0, window.start)
    if screenshot or quit_after:
        _arm_auto_quit(app, window, screenshot, quit_after, min_frames, on_screenshot)
    app.aboutToQuit.connect(window.shutdown)
    restore_signals = _quit_on_signals(app)
    try:
        code = app.exec()
    finally:
        restore_signals()
    window.shutdown()
    return int(code)


def _quit_on_signals(app: QApplication) -> Callable[[], None]:
    """SIGINT (Ctrl-C) and SIGTERM quit the app the way closing it does (``aboutToQuit`` shuts
    the window down: the recording is finished, the virtual camera closed). Python runs a
    signal handler only when the interpreter gets control, which Qt's event loop does not give
    while it waits, so a timer hands it control every 200 ms. Returns what undoes this."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.signal(sig, lambda _sig, _frame: app.quit()) for sig in (signal.SIGINT, signal.SIGTERM)}
    wake = QTimer(app)
    wake.timeout.connect(lambda: None)
    wake.start(200)

    def restore() -> None:
        wake.stop()
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


def _arm_auto_quit(app: QApplication, window: MainWindow, screenshot: str | None,
                   quit_after: float | None, min_frames: int,
                   on_screenshot: Callable[[Path, int], None] | None) -> None:
    started = time.monotonic()
    limit = quit_after if quit_after else 60.0
    timer = QTimer(window)

    def check() -> None:
        frames = window.live_view.avatar_view.frames_painted
        timed_out = time.monotonic() - started > limit
        if frames < min_frames and not timed_out:
            return
        timer.stop()
        if screenshot:
            target = Path(screenshot)
            target.parent.mkdir(parents=True, exist_ok=True)
            window.grab().save(str(target))
            log.info("screenshot saved to %s (%d frames shown)", target, frames)
            if on_screenshot is not None:
                on_screenshot(target, frames)
        app.quit()

    timer.timeout.connect(check)
    timer.start(200)
