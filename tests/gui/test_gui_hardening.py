"""Hardening of the window (issue 11): saved settings cannot stop it, the output switches are
in sight, a recording never replaces a file unasked, the pose meter says which way to move,
and what the command line asks for (mirror, engine, virtual camera) is what runs."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import pytest
from gui_helpers import TIMEOUT, wait_frames
from PySide6.QtCore import QPoint
from PySide6.QtWidgets import QFileDialog, QMessageBox

from avatarify_app.config import EngineConfig, VirtualCameraConfig
from avatarify_app.engines.registry import REGISTRY
from avatarify_app.gui.settings import SCHEMA, AppSettings, settings_path
from avatarify_app.pipeline import avatar_store as store

GARBAGE = ("nan", "inf", "-inf", "1e999", "-1e308", "", "[]", "{}", "-1", "999999", "0.5e", "true false",
           "a, b, c", "@ByteArray(\\x1\\x2garbage)", "@Variant(\\0\\0\\0\\x7f\\0\\0\\0\\x18)",
           "@Variant(\\0\\0\\0\\n\\0\\0\\0\\0)", "@Size(1 2)", "@Rect(1 2 3 4)", "@Invalid()",
           "\\0", "\\x7", "caf\\xe9", "x" * 5000, "None", "null", "0x10", "1,5", "'0.3'", "--camera 0",
           "/dev/video99", "/nonexistent/file.mp4", "../../etc/passwd", "auto", "on", "off", "True")


def ini_line(key: str, value: str) -> tuple[str, str]:
    """(section, line) of ``key`` in Qt's INI layout (the first part is the section)."""
    section, _, rest = key.partition("/")
    if not rest:
        return "General", f"{section}={value}"
    return section, f"{rest.replace('/', chr(92))}={value}"


def write_settings(entries: dict[str, str]) -> Path:
    sections: dict[str, list[str]] = {}
    for key, value in entries.items():
        section, line = ini_line(key, value)
        sections.setdefault(section, []).append(line)
    text = "".join(f"[{name}]\n" + "\n".join(lines) + "\n\n" for name, lines in sections.items())
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def all_keys() -> list[str]:
    keys = [*SCHEMA, "window/geometry", "window/state", "unknown/key", "General/what", "engine/nope/x"]
    keys += [f"engine/{s.name}/{o.name}" for s in REGISTRY.specs() for o in s.options]
    return keys


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999", "-0.5", "2", "[]", "half"])
def test_a_bad_overlay_opacity_falls_back_with_one_log_line(qtbot, make_window, caplog, value):
    write_settings({"live/overlay_opacity": value})
    caplog.set_level(logging.WARNING, logger="avatarify_app.gui.settings")
    window = make_window()
    wait_frames(qtbot, window, 3)
    assert window.calibration_panel.overlay_slider.value() == round(100 * SCHEMA["live/overlay_opacity"].default)
    lines = [r for r in caplog.records if "live/overlay_opacity" in r.getMessage()]
    assert len(lines) == 1


@pytest.mark.parametrize("seed", range(6))
def test_the_window_opens_with_a_fuzzed_settings_file(qtbot, make_window, caplog, seed):
    rng = random.Random(seed)
    entries = {key: rng.choice(GARBAGE) for key in all_keys()}
    entries.update({f"fuzz/key{i}": rng.choice(GARBAGE) for i in range(20)})
    write_settings(entries)
    caplog.set_level(logging.WARNING, logger="avatarify_app.gui.settings")
    window = make_window(camera="" if seed % 2 else None)
    wait_frames(qtbot, window, 3)
    assert window.isVisible() and window.session.running
    assert 0.0 <= window.state.view.overlay_opacity <= 1.0
    assert window.session.engine_config.name in ["auto", *REGISTRY.names()]
    per_key: dict[str, int] = {}
    for record in caplog.records:
        key = record.getMessage().split("=")[0].removeprefix("settings: ignoring ")
        per_key[key] = per_key.get(key, 0) + 1
    assert per_key and max(per_key.values()) == 1  # one line per bad key
    window.close()  # the bad values were dropped: the next start is quiet
    caplog.clear()
    again = make_window(camera="")
    wait_frames(qtbot, again, 3)
    assert not [r for r in caplog.records if "settings: ignoring" in r.getMessage()]


def test_every_key_reads_back_what_was_written(tmp_path):
    settings = AppSettings(tmp_path / "s.ini")
    values = {"live/mirror": True, "live/overlay_opacity": 0.8, "engine/half": "off", "source/camera": "/dev/video2"}
    for key, value in values.items():
        settings.set(key, value)
    settings.sync()
    again = AppSettings(tmp_path / "s.ini")
    assert {key: again.get(key) for key in values} == values


def test_the_output_switches_are_in_sight_at_the_default_size(qtbot, make_window):
    window = make_window()
    wait_frames(qtbot, window, 2)
    assert (window.width(), window.height()) == (1280, 800)  # nothing saved: the default size
    bar = window.output_bar
    for widget in (bar.vcam_check, bar.record_button):
        assert widget.isVisible()
        assert not widget.visibleRegion().isEmpty()  # not scrolled away or clipped
        top_left = widget.mapTo(window, QPoint(0, 0))
        assert window.rect().contains(top_left) and top_left.y() < window.height() // 4
    # the controls dock scrolls, the outputs never: they are not in it
    assert not window.controls_dock.isAncestorOf(bar.vcam_check)


def test_recording_never_replaces_a_file_unasked(qtbot, make_window, tmp_path, monkeypatch):
    window = make_window()
    wait_frames(qtbot, window)
    target = tmp_path / "take.mp4"
    target.write_bytes(b"precious")
    asked = []

    def answer(reply):
        def question(*args, **kwargs):
            asked.append(args[2] if len(args) > 2 else kwargs.get("text"))
            return reply
        return question

    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.No))
    assert not window.start_recording(target)
    assert len(asked) == 1 and "take.mp4" in asked[0]
    assert window.outputs.recorder is None and target.read_bytes() == b"precious"

    # the controller on its own refuses too (nothing asked the user)
    assert not window.outputs.start_recording(target)
    assert target.read_bytes() == b"precious" and "exists" in window.errors_shown[-1][1]

    # the menu's file dialog leaves the question to the app: asked once, and yes replaces it
    options = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        lambda *a, **k: options.append(k.get("options")) or (str(target), ""))
    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Yes))
    window.toggle_recording()
    assert options == [QFileDialog.Option.DontConfirmOverwrite] and len(asked) == 2
    assert window.outputs.recorder is not None
    wait_frames(qtbot, window, 10)
    window.toggle_recording()  # stop
    qtbot.waitUntil(lambda: window.tasks.pending == 0, timeout=TIMEOUT)
    import cv2

    cap = cv2.VideoCapture(str(target))
    ok, _ = cap.read()
    cap.release()
    assert ok and target.read_bytes() != b"precious"


def test_a_poor_match_says_which_way_to_move_and_auto_calibration_keeps_the_old_one(qtbot, make_window,
                                                                                     user_avatars):
    from live_fakes import Fakes

    window = make_window(avatar=str(user_avatars[0]), fakes=Fakes(pose_match=0.3, pose_hint="turn left, chin up"))
    wait_frames(qtbot, window)
    panel = window.calibration_panel
    qtbot.waitUntil(lambda: panel.pose_meter.value() == 30, timeout=TIMEOUT)
    qtbot.waitUntil(lambda: panel.hint_label.isVisible(), timeout=TIMEOUT)
    assert "turn left, chin up" in panel.hint_label.text()  # the live hint under the meter

    window.controller.auto_calibrate()
    qtbot.waitUntil(lambda: "30%" in panel.calibration_label.text(), timeout=TIMEOUT)
    text = panel.calibration_label.text()
    assert "Auto-calibration" in text and "turn left, chin up" in text
    assert store.load_calibration(user_avatars[0]) is None  # nothing saved for a poor match
    assert window.errors_shown == []  # said in the panel, not a dialog


def test_the_meter_hides_the_hint_when_the_match_is_good(qtbot, make_window):
    from live_fakes import Fakes

    window = make_window(fakes=Fakes(pose_match=0.92, pose_hint=None))
    wait_frames(qtbot, window)
    panel = window.calibration_panel
    qtbot.waitUntil(lambda: panel.pose_meter.value() == 92, timeout=TIMEOUT)
    assert not panel.hint_label.isVisible()


def test_the_command_line_mirror_engine_and_virtual_camera_are_honoured(qtbot, make_window, vcam_backend):
    AppSettings().set("live/mirror", False)
    config = EngineConfig(name=REGISTRY.names()[-1], device="cpu", half=False)
    vcam = VirtualCameraConfig(width=352, height=288, fps=15.0, backend="avatarify-gui-test")
    window = make_window(mirror=True, engine_config=config, vcam_config=vcam)
    wait_frames(qtbot, window)
    assert window.framing_panel.mirror_check.isChecked() and window.session.options.mirror
    assert window.session.engine_config == config
    qtbot.waitUntil(lambda: not window.state.engine_pending, timeout=TIMEOUT)
    window.output_bar.vcam_check.setChecked(True)
    backend = vcam_backend.instances[-1]
    qtbot.waitUntil(lambda: len(backend.frames) >= 2, timeout=TIMEOUT)
    assert backend.frames[-1].shape == (288, 352, 3) and backend.fps == 15.0
    assert not AppSettings().get_bool("live/mirror")  # for this run only: not saved as the user's choice
    assert AppSettings().get_str("engine/name") == "auto"  # nor the engine (the default stays)

    # another engine picked in the window is asked for on the device the command line named
    other = REGISTRY.names()[0]
    window.engines.select(other)
    assert window.state.engine.name == other and window.state.engine.device == "cpu"


RUN_APP = """
import json, sys
sys.path.insert(0, sys.argv[1])
from live_fakes import Fakes
from avatarify_app.config import EngineConfig, VirtualCameraConfig
from avatarify_app.gui import app

built = []
real_window = app.MainWindow

def window(settings, **kwargs):
    built.append(real_window(settings, session_factory=Fakes().session_factory, scan_cameras=False, **kwargs))
    return built[-1]

app.MainWindow = window
config = EngineConfig(name=sys.argv[3], device="cpu")
vcam = VirtualCameraConfig(width=320, height=240, backend="none-needed")
code = app.run_app(camera=sys.argv[2], engine_config=config, vcam_config=vcam, mirror=True, quit_after=20,
                   min_frames=3)
w = built[0]
print(json.dumps({"code": code, "windows": len(built), "mirror": w.state.options.mirror,
                  "vcam": [w.outputs.vcam_config.width, w.outputs.vcam_config.height],
                  "engine": [w.state.engine.name, w.state.engine.device],
                  "frames": w.live_view.avatar_view.frames_painted}))
"""


def test_run_app_hands_the_command_line_to_the_window(clip, isolated_home):
    """``gui.app.run_app`` (what ``live`` without --headless calls) builds the window with them
    (in a process of its own: it runs and quits the application's event loop)."""
    import json
    import os
    import subprocess
    import sys

    engine = REGISTRY.names()[-1]
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "AVATARIFY_HOME": str(isolated_home)}
    done = subprocess.run([sys.executable, "-c", RUN_APP, str(Path(__file__).parent.parent), str(clip), engine],
                          capture_output=True, text=True, timeout=120, env=env, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["code"] == 0 and got["windows"] == 1
    assert got["mirror"] is True
    assert got["vcam"] == [320, 240]
    assert got["engine"] == [engine, "cpu"]
    assert got["frames"] >= 3
