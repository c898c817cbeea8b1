"""Can Qt's X11 platform plugin (xcb) load on this machine? Asked before the QApplication is made,
and by `doctor`. No Qt import here: the plugin is looked up on disk.

Since Qt 6.5 the xcb plugin needs libxcb-cursor0 and a few other X11 libraries that a fresh
desktop install often lacks; without them Qt aborts with its own message ("Could not load the Qt
platform plugin "xcb" ... no Qt platform plugin could be initialized"). ``qt_problem`` names the
missing libraries and the commands that install them (Debian/Ubuntu, Fedora) instead.

Which libraries are missing: ``ldd`` on PySide6's ``libqxcb.so`` (every library it needs, directly
or through Qt's own libraries, that the dynamic loader cannot find); where ``ldd`` is not there,
``ctypes.util.find_library`` on the X11 libraries the plugin is known to need.
"""

from __future__ import annotations

import ctypes.util
import importlib.util
import logging
import os
import platform
import subprocess
from collections.abc import Mapping
from pathlib import Path

from avatarify_app.errors import AvatarifyError

log = logging.getLogger(__name__)

# soname -> (Debian/Ubuntu package, Fedora package).
PACKAGES: dict[str, tuple[str, str]] = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-xinerama.so.0": ("libxcb-xinerama0", "libxcb"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb"),
    "libxcb-xinput.so.0": ("libxcb-xinput0", "libxcb"),
    "libxcb-glx.so.0": ("libxcb-glx0", "libxcb"),
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libX11.so.6": ("libx11-6", "libX11"),
    "libSM.so.6": ("libsm6", "libSM"),
    "libICE.so.6": ("libice6", "libICE"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl"),
    "libGL.so.1": ("libgl1", "libglvnd-glx"),
    "libOpenGL.so.0": ("libopengl0", "libglvnd-opengl"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2"),
}
# What the xcb plugin of Qt 6.5+ links beyond a base system (the fallback check without ldd).
XCB_LIBRARIES = (
    "libxcb-cursor.so.0", "libxkbcommon-x11.so.0", "libxkbcommon.so.0", "libxcb-icccm.so.4",
    "libxcb-keysyms.so.1", "libxcb-image.so.0", "libxcb-render-util.so.0", "libxcb-shape.so.0",
    "libxcb-randr.so.0", "libxcb-xkb.so.1", "libxcb-sync.so.1", "libxcb-xfixes.so.0", "libxcb-shm.so.0",
    "libxcb-render.so.0", "libxcb-xinput.so.0", "libxcb.so.1", "libX11-xcb.so.1", "libX11.so.6",
    "libEGL.so.1", "libfontconfig.so.1", "libfreetype.so.6",
)


class QtLibrariesMissing(AvatarifyError):
    """Qt's X11 platform plugin cannot load: system libraries are missing."""


def xcb_plugin() -> Path | None:
    """PySide6's ``libqxcb.so`` (found without importing PySide6), or None."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or spec.origin is None:
        return None
    plugin = Path(spec.origin).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return plugin if plugin.is_file() else None


def parse_ldd(output: str) -> tuple[str, ...]:
    """The libraries ``ldd`` reports as "not found", each once, in its order."""
    missing: list[str] = []
    for line in output.splitlines():
        name, sep, where = line.strip().partition("=>")
        if sep and where.strip() == "not found" and name.strip() not in missing:
            missing.append(name.strip())
    return tuple(missing)


def missing_xcb_libraries(plugin: Path | None = None) -> tuple[str, ...]:
    """The system libraries Qt's xcb plugin needs and the loader cannot find (empty: none missing)."""
    plugin = plugin or xcb_plugin()
    if plugin is not None:
        try:
            done = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, timeout=20, check=False)
        except (OSError, subprocess.SubprocessError) as err:
            log.debug("ldd on %s failed (%s); looking the libraries up one by one", plugin, err)
        else:
            if done.returncode == 0:
                return parse_ldd(done.stdout)
            log.debug("ldd on %s: exit %d %s", plugin, done.returncode, done.stderr.strip())
    return tuple(name for name in XCB_LIBRARIES if ctypes.util.find_library(name[3:].split(".so")[0]) is None)


def qt_uses_xcb(env: Mapping[str, str] | None = None, system: str | None = None) -> bool | None:
    """True when Qt will load its xcb plugin, False when it will not (another OS, or QT_QPA_PLATFORM
    names another platform first), None in a Wayland session where Qt may use Wayland instead."""
    env = os.environ if env is None else env
    if (system or platform.system()) != "Linux":
        return False
    chosen = env.get("QT_QPA_PLATFORM", "").strip()
    if chosen:
        return chosen.split(";")[0].split(":")[0] == "xcb"
    if env.get("WAYLAND_DISPLAY") or env.get("XDG_SESSION_TYPE") == "wayland":
        return None
    return True


def install_commands(missing: tuple[str, ...] | list[str]) -> str:
    """The commands that install ``missing`` (Debian/Ubuntu, Fedora), one per line, and the names
    of libraries whose package is not known here."""
    debian = list(dict.fromkeys(PACKAGES[m][0] for m in missing if m in PACKAGES))
    fedora = list(dict.fromkeys(PACKAGES[m][1] for m in missing if m in PACKAGES))
    lines = []
    if debian:
        lines.append(f"    Debian/Ubuntu:  sudo apt-get install {' '.join(debian)}")
        lines.append(f"    Fedora:         sudo dnf install {' '.join(fedora)}")
    unknown = [m for m in missing if m not in PACKAGES]
    if unknown:
        lines.append(f"    and the package that provides {', '.join(unknown)} "
                     "(apt-file search NAME, or dnf provides '*/NAME')")
    return "\n".join(lines)


def qt_problem(env: Mapping[str, str] | None = None, system: str | None = None) -> QtLibrariesMissing | None:
    """Why Qt's X11 plugin cannot load here (the error to raise or show), or None when it can or
    when Qt will not use it."""
    if qt_uses_xcb(env, system) is False:
        return None
    missing = missing_xcb_libraries()
    if not missing:
        return None
    return QtLibrariesMissing(
        f"The desktop app cannot start: Qt's X11 support needs {', '.join(missing)}, "
        "which this system does not have.",
        "Install them, then start the app again (`live --headless` works without them):\n"
        + install_commands(missing))


def check_qt_can_start(env: Mapping[str, str] | None = None) -> None:
    """Raise ``QtLibrariesMissing`` when Qt would abort loading its xcb plugin; in a Wayland session
    (where Qt may not need it) only log the problem."""
    problem = qt_problem(env)
    if problem is None:
        return
    if qt_uses_xcb(env) is None:
        log.warning("%s (Qt may use Wayland here instead.)\n%s", problem.message, problem.hint)
        return
    raise problem
