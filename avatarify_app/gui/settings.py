"""What the app remembers between runs: QSettings (INI) at ``user_data_dir()/settings.ini``.

Every value is checked when it is read (type, finite, range, known choice): a file edited by
hand, or written by another version, cannot stop the app from starting. A bad value falls
back to its default with one log line, and is dropped from the file. Keys are grouped by their owner: source/ and
avatar/ and live/ (the session controller), engine/ (the engine controller, one group per
engine for its options), output/ (the outputs), window/ (the window).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings

from avatarify_app import paths
from avatarify_app.errors import ConfigError

log = logging.getLogger(__name__)

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def settings_path() -> Path:
    return paths.user_data_dir() / "settings.ini"


@dataclass(frozen=True)
class Setting:
    """One key's kind ("bool", "float", "str", "choice"), default and allowed values."""

    kind: str
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()


SCHEMA: dict[str, Setting] = {
    "source/camera": Setting("str", ""),
    "avatar/path": Setting("str", ""),
    "live/mirror": Setting("bool", False),
    "live/passthrough": Setting("bool", False),
    "live/relative": Setting("bool", True),
    "live/adapt_scale": Setting("bool", True),
    "live/show_landmarks": Setting("bool", False),
    "live/overlay_opacity": Setting("float", 0.35, 0.0, 1.0),
    "engine/name": Setting("str", "auto"),  # auto: the registry's first available engine, as `live` does
    # auto: the engine's default (on for CUDA); on/off: the user's choice. Files from before
    # the tri-state kept true/false, where false meant "the default".
    "engine/half": Setting("choice", "auto", choices=("auto", "on", "off", "true", "false")),
    "engine/checkpoint": Setting("str", ""),  # before per-engine options: read once, never written
    "output/virtual_camera": Setting("bool", False),
    "window/debug_view": Setting("bool", False),
    "window/controls_tab": Setting("choice", "Live", choices=("Live", "Framing", "Engine")),
}


class BadValue(ValueError):
    """A stored value that does not fit its key (the message says why)."""


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise BadValue("not true or false")


def parse_float(value: Any, minimum: float | None = None, maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadValue(f"not a number ({type(value).__name__})")
    try:
        number = float(value)
    except (TypeError, ValueError) as err:
        raise BadValue("not a number") from err
    if not math.isfinite(number):
        raise BadValue("not a finite number")
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise BadValue(f"outside {minimum}..{maximum}")
    return number


def parse_str(value: Any, choices: Sequence[str] = ()) -> str:
    if not isinstance(value, str):
        raise BadValue(f"not text ({type(value).__name__})")
    if "\x00" in value:
        raise BadValue("contains a NUL character")
    if choices and value not in choices:
        raise BadValue(f"not one of {', '.join(choices)}")
    return value


class AppSettings:
    """Typed, validated access to the settings file (see the module docstring)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else settings_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._qs = QSettings(str(self.path), QSettings.Format.IniFormat)
        self._warned: set[str] = set()

    # ----------------------------------------------------------------- reading
    def _raw(self, key: str) -> Any:
        try:
            return self._qs.value(key)
        except Exception as err:  # a value Qt cannot even turn into Python
            self._bad(key, "<unreadable>", str(err), None)
            return None

    def _bad(self, key: str, value: Any, why: str, default: Any, secret: bool = False) -> None:
        """Say once that ``key`` holds a bad value, and drop it from the file (the default
        applies from now on, so the next start is quiet)."""
        if key in self._warned:
            return
        self._warned.add(key)
        shown = "<hidden>" if secret else repr(value)[:80]
        log.warning("settings: ignoring %s=%s (%s); using %r instead", key, shown, why,
                    "<default>" if secret else default)
        self._qs.remove(key)

    def get(self, key: str) -> Any:
        """The stored value of a key in ``SCHEMA``, checked, or its default."""
        spec = SCHEMA[key]
        value = self._raw(key)
        if value is None:
            return spec.default
        try:
            if spec.kind == "bool":
                return parse_bool(value)
            if spec.kind == "float":
                return parse_float(value, spec.minimum, spec.maximum)
            if spec.kind == "choice" and isinstance(value, bool):  # written as a bool before
                value = "true" if value else "false"
            return parse_str(value, spec.choices)
        except BadValue as err:
            self._bad(key, value, str(err), spec.default)
            return spec.default

    def get_bool(self, key: str) -> bool:
        return bool(self.get(key))

    def get_float(self, key: str) -> float:
        return float(self.get(key))

    def get_str(self, key: str) -> str:
        return str(self.get(key))

    def get_choice(self, key: str, choices: Sequence[str], default: str) -> str:
        """A text value that must be one of ``choices`` (known only at run time, e.g. engine names)."""
        value = self._raw(key)
        if value is None:
            return default
        try:
            return parse_str(value, tuple(choices))
        except BadValue as err:
            self._bad(key, value, str(err), default)
            return default

    def get_option(self, key: str, option: Any) -> Any:
        """An engine option's stored value checked by ``option.coerce`` (an ``EngineOption``), or
        None when there is none or it does not fit. A secret's value is never logged."""
        value = self._raw(key)
        if value is None:
            return None
        secret = getattr(option, "kind", "") == "secret"
        try:
            if option.kind in ("path", "folder", "text", "secret", "choice"):
                value = parse_str(value)
                if value == "":
                    return None
            elif option.kind == "bool":
                value = parse_bool(value)
            elif option.kind in ("float", "int"):
                number = parse_float(value)
                if option.kind == "int":
                    if number != int(number):
                        raise BadValue("not a whole number")
                    value = int(number)
                else:
                    value = number
            return option.coerce(value)
        except (BadValue, ConfigError) as err:
            why = "not valid" if secret else str(err)
            self._bad(key, value, why, option.default, secret=secret)
            return None

    def geometry(self) -> QByteArray | None:
        return self._bytes("window/geometry")

    def window_state(self) -> QByteArray | None:
        return self._bytes("window/state")

    def _bytes(self, key: str) -> QByteArray | None:
        value = self._raw(key)
        if value is None:
            return None
        if not isinstance(value, QByteArray) or value.isEmpty():
            self._bad(key, value, "not saved window data", None)
            return None
        return value

    # ----------------------------------------------------------------- writing
    def set(self, key: str, value: object) -> None:
        self._qs.setValue(key, value)
        self._warned.discard(key)

    def remove(self, key: str) -> None:
        self._qs.remove(key)

    def sync(self) -> None:
        self._qs.sync()
