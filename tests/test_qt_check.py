"""Qt's X11 plugin and the system libraries it needs: named, with the commands that install them,
before Qt would abort (issue 11, item 13)."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys

import pytest

from avatarify_app import qt_check
from avatarify_app.commands.doctor import Report, check_qt

X11 = {"DISPLAY": ":0"}
MISSING = ("libxcb-cursor.so.0", "libxcb-icccm.so.4", "libweird.so.3")


@pytest.fixture
def missing(monkeypatch):
    """Fake the lookup: these libraries cannot be found."""
    found: list[tuple[str, ...]] = [MISSING]
    monkeypatch.setattr(qt_check, "missing_xcb_libraries", lambda plugin=None: found[0])
    return found


def test_missing_libraries_are_named_with_both_install_commands(missing):
    problem = qt_check.qt_problem(X11, "Linux")
    assert isinstance(problem, qt_check.QtLibrariesMissing)
    text = str(problem)
    assert "libxcb-cursor.so.0, libxcb-icccm.so.4, libweird.so.3" in problem.message
    assert "sudo apt-get install libxcb-cursor0 libxcb-icccm4" in text
    assert "sudo dnf install xcb-util-cursor xcb-util-wm" in text
    assert "libweird.so.3" in problem.hint and "apt-file search" in problem.hint  # no package known for it
    with pytest.raises(qt_check.QtLibrariesMissing):
        qt_check.check_qt_can_start(X11)


def test_nothing_missing_nothing_said(missing):
    missing[0] = ()
    assert qt_check.qt_problem(X11, "Linux") is None
    qt_check.check_qt_can_start(X11)  # no error


def test_a_wayland_session_only_logs(missing, caplog):
    with caplog.at_level(logging.WARNING, logger="avatarify_app.qt_check"):
        qt_check.check_qt_can_start({"WAYLAND_DISPLAY": "wayland-0"})
    assert "libxcb-cursor.so.0" in caplog.text and "Wayland" in caplog.text


@pytest.mark.parametrize(("env", "system", "uses"), [
    ({}, "Linux", True),
    ({"QT_QPA_PLATFORM": "xcb"}, "Linux", True),
    ({"QT_QPA_PLATFORM": "xcb:nomitshm"}, "Linux", True),
    ({"QT_QPA_PLATFORM": "offscreen"}, "Linux", False),
    ({"QT_QPA_PLATFORM": "wayland;xcb"}, "Linux", False),
    ({"XDG_SESSION_TYPE": "wayland"}, "Linux", None),
    ({}, "Windows", False),
    ({}, "Darwin", False),
])
def test_when_qt_uses_xcb(env, system, uses):
    assert qt_check.qt_uses_xcb(env, system) is uses


def test_other_platforms_are_not_checked(missing):
    assert qt_check.qt_problem({"QT_QPA_PLATFORM": "offscreen"}, "Linux") is None
    assert qt_check.qt_problem({}, "Windows") is None


def test_parse_ldd():
    out = ("\tlinux-vdso.so.1 (0x00007ffd)\n"
           "\tlibQt6XcbQpa.so.6 => /x/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007f1)\n"
           "\tlibxcb-cursor.so.0 => not found\n\tlibxcb-icccm.so.4 => not found\n"
           "\tlibxcb-cursor.so.0 => not found\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2)\n")
    assert qt_check.parse_ldd(out) == ("libxcb-cursor.so.0", "libxcb-icccm.so.4")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the xcb plugin exists on Linux only")
def test_the_real_lookup_agrees_with_the_loader():
    """On this machine: every library named missing really cannot be loaded."""
    import ctypes

    for name in qt_check.missing_xcb_libraries():
        with pytest.raises(OSError):
            ctypes.CDLL(name)


def test_doctor_names_them_and_the_commands(missing):
    out = io.StringIO()
    report = Report(out)
    check_qt(report, env=X11, system="Linux")
    text = out.getvalue()
    assert text.startswith("[fail] qt platform") and "libxcb-cursor.so.0" in text
    assert "sudo apt-get install libxcb-cursor0 libxcb-icccm4" in text
    assert "sudo dnf install xcb-util-cursor xcb-util-wm" in text
    assert report.failures == 1
    # No display here (a server): the desktop app is not what runs, so a warning.
    out = io.StringIO()
    check_qt(Report(out), env={}, system="Linux")
    assert out.getvalue().startswith("[warn] qt platform")
    missing[0] = ()
    out = io.StringIO()
    check_qt(Report(out), env=X11, system="Linux")
    assert out.getvalue().startswith("[ok  ] qt platform")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the xcb plugin exists on Linux only")
def test_the_app_says_so_instead_of_qt_aborting(tmp_path):
    script = ("import sys\n"
              "import avatarify_app.qt_check as q\n"
              "q.missing_xcb_libraries = lambda plugin=None: ('libxcb-cursor.so.0',)\n"
              "from avatarify_app.cli import main\n"
              "sys.exit(main(['gui', '--no-vcam']))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "XDG_SESSION_TYPE")}
    env.update(QT_QPA_PLATFORM="xcb", DISPLAY=":99", AVATARIFY_HOME=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2, done.stderr
    assert "error: The desktop app cannot start: Qt's X11 support needs libxcb-cursor.so.0" in done.stderr
    assert "sudo apt-get install libxcb-cursor0" in done.stderr and "sudo dnf install xcb-util-cursor" in done.stderr
    assert "qt.qpa" not in done.stderr and "Aborted" not in done.stderr
