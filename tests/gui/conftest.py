"""GUI fixtures: a real Session (fake tracker/engine) driven by a small video file,
a recording pyvirtualcam backend, and a window factory that always shuts down."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from live_fakes import Fakes, RecordingBackend, write_clip

from avatarify_app import paths
from avatarify_app.config import VirtualCameraConfig
from avatarify_app.frames import save_image

VCAM_BACKEND = "avatarify-gui-test"


@pytest.fixture
def vcam_backend():
    import pyvirtualcam

    pyvirtualcam.register_backend(VCAM_BACKEND, RecordingBackend)
    RecordingBackend.instances = []
    RecordingBackend.fail_with = None
    yield RecordingBackend
    RecordingBackend.fail_with = None
    pyvirtualcam.camera.BACKENDS.pop(VCAM_BACKEND, None)  # else later tests find a "working" camera


@pytest.fixture
def clip(tmp_path):
    return write_clip(tmp_path / "driving.avi")


@pytest.fixture
def user_avatars():
    """Two portraits in the (isolated) user folder."""
    folder = paths.user_avatars_dir()
    made = []
    for i, color in enumerate(((200, 120, 90), (90, 140, 210))):
        img = np.zeros((256, 256, 3), np.uint8)
        img[:] = color
        img[60:200, 80:176] = (230, 200, 170)
        path = folder / f"user_{i}.png"
        save_image(path, img)
        made.append(path)
    return made


@pytest.fixture
def make_window(qtbot, clip, vcam_backend):
    """Build a started MainWindow; every window made is shut down at the end."""
    from avatarify_app.gui.main_window import MainWindow
    from avatarify_app.gui.settings import AppSettings

    windows = []

    def make(camera=None, fakes: Fakes | None = None, start: bool = True, **kwargs):
        fakes = fakes or Fakes()
        kwargs.setdefault("scan_cameras", False)
        kwargs.setdefault("vcam_config", VirtualCameraConfig(width=320, height=240, fps=30.0,
                                                             backend=VCAM_BACKEND))
        window = MainWindow(AppSettings(), camera=str(clip) if camera is None else camera or None,
                            session_factory=fakes.session_factory, **kwargs)
        window.fakes = fakes
        window.countdown_step_ms = 30
        qtbot.addWidget(window)
        windows.append(window)
        window.show()
        if start:
            window.start()
        return window

    yield make
    for w in windows:
        w.close()
        w.shutdown()
