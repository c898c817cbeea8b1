"""What the app says about a portrait (scaled down, transparent, several faces, blurry) reaches
the status bar, both when a photo is added and when a portrait is selected."""

from __future__ import annotations

import cv2
import numpy as np

from avatarify_app.frames import load_image
from avatarify_app.paths import AVATARS_DIR

TIMEOUT = 30000


def _transparent_astronaut(path):
    """The shipped portrait with a see-through band at the top hiding bright green."""
    rgba = np.dstack([load_image(AVATARS_DIR / "astronaut.png"), np.full((256, 256), 255, np.uint8)])
    rgba[:30, :, :3] = (0, 255, 0)
    rgba[:30, :, 3] = 0
    cv2.imwrite(str(path), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    return path


def test_selecting_a_portrait_shows_its_notes(qtbot, make_window, tmp_path):
    window = make_window()
    qtbot.waitUntil(lambda: window.live_view.avatar_view.frames_painted > 2, timeout=TIMEOUT)
    window.set_avatar(_transparent_astronaut(tmp_path / "cutout.png"))
    qtbot.waitUntil(lambda: "transparent" in window.statusBar().currentMessage(), timeout=TIMEOUT)
    assert "cutout.png" in window.statusBar().currentMessage()
    assert window.session.avatar_notes and "transparent" in window.session.avatar_notes[0]


def test_adding_a_photo_shows_its_notes(qtbot, make_window, tmp_path):
    window = make_window()
    n = window.gallery.count()
    window.add_avatar_file(_transparent_astronaut(tmp_path / "cutout.png"))  # real face framing
    qtbot.waitUntil(lambda: window.gallery.count() == n + 1, timeout=TIMEOUT)
    message = window.statusBar().currentMessage()
    assert message.startswith("Added cutout.png.") and "transparent" in message
    added = window.gallery.current_path()
    assert tuple(load_image(added)[2, 128]) != (0, 255, 0)  # the hidden green did not come back
