"""What the app remembers between runs: QSettings (INI) at ``user_data_dir()/settings.ini``."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from PySide6.QtCore import QByteArray, QSettings

from avatarify_app import paths


def settings_path() -> Path:
    return paths.user_data_dir() / "settings.ini"


class AppSettings:
    """Typed access to the settings file. Keys are grouped: source/, avatar/, engine/, live/, window/."""

    BOOL_DEFAULTS: ClassVar[dict[str, bool]] = {
        "live/mirror": False,
        "live/passthrough": False,
        "live/relative": True,
        "live/adapt_scale": True,
        "live/show_landmarks": False,
        "engine/half": False,
        "output/virtual_camera": False,
        "window/debug_view": False,
    }
    FLOAT_DEFAULTS: ClassVar[dict[str, float]] = {
        "live/overlay_opacity": 0.35,
    }
    STR_DEFAULTS: ClassVar[dict[str, str]] = {
        "source/camera": "",
        "avatar/path": "",
        "engine/name": "landmarks",
        "engine/checkpoint": "",
    }

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else settings_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._qs = QSettings(str(self.path), QSettings.Format.IniFormat)

    def get_bool(self, key: str) -> bool:
        value = self._qs.value(key, self.BOOL_DEFAULTS.get(key, False))
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)

    def get_float(self, key: str) -> float:
        default = self.FLOAT_DEFAULTS.get(key, 0.0)
        try:
            return float(self._qs.value(key, default))
        except (TypeError, ValueError):
            return default

    def get_str(self, key: str) -> str:
        value = self._qs.value(key, self.STR_DEFAULTS.get(key, ""))
        return "" if value is None else str(value)

    def set(self, key: str, value: object) -> None:
        self._qs.setValue(key, value)

    def geometry(self) -> QByteArray | None:
        value = self._qs.value("window/geometry")
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    def window_state(self) -> QByteArray | None:
        value = self._qs.value("window/state")
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    def sync(self) -> None:
        self._qs.sync()
