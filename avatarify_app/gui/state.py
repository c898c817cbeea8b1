"""The window's view-model: the app state the panels show, with one change signal per field.

The controllers are the writers of the session-related fields (source, avatar, engine,
runtime, options, calibration, outputs); the panels read the fields and redraw on their
change signals (as napari's widgets follow their layer models through events), and ask the
controllers for changes through their own signals. Values are immutable (frozen dataclasses,
``EngineConfig``, ``LiveOptions``, ``Path``), so a reader can never change what another sees;
a field emits only when the new value differs from the old one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from avatarify_app.config import EngineConfig, LiveOptions


@dataclass(frozen=True)
class RunningEngine:
    """What actually runs, from the session's stats: engine, device and why it was chosen."""

    engine: str | None = None
    device: str | None = None
    note: str = ""  # why ``auto`` chose this engine, short ("" when it was asked for by name)
    detail: str = ""  # every reason of that choice (``Stats.engine_note``: engines tried and skipped)

    @property
    def cuda(self) -> bool:
        return str(self.device or "").startswith("cuda")


@dataclass(frozen=True)
class Calibration:
    """What the calibration label says, and whether a calibration for this portrait and camera
    orientation is in use (the guide's step 3)."""

    text: str = "Not calibrated"
    calibrated: bool = False


@dataclass(frozen=True)
class OutputsView:
    """The virtual camera switch and its state line, and the recording in progress."""

    vcam_allowed: bool = True
    vcam_on: bool = False
    vcam_text: str = "off"
    recording: Path | None = None


@dataclass(frozen=True)
class ViewOptions:
    """How the views draw (nothing here reaches the session)."""

    overlay_opacity: float = 0.35
    show_landmarks: bool = False
    full_frame: bool = False
    debug: bool = False


def _field(name: str) -> property:
    private = "_" + name

    def get(self: AppState) -> Any:
        return getattr(self, private)

    def put(self: AppState, value: Any) -> None:
        if value == getattr(self, private):
            return
        setattr(self, private, value)
        getattr(self, name + "_changed").emit(value)

    return property(get, put, doc=f"``{name}``; setting a different value emits ``{name}_changed``.")


class AppState(QObject):
    """The fields and their change signals (each carries the new value)."""

    source_changed = Signal(object)  # str | None: the camera or file driving the avatar
    avatar_changed = Signal(object)  # Path | None: the portrait animated
    engine_changed = Signal(object)  # EngineConfig: the engine asked for (the picker shows it)
    engine_pending_changed = Signal(bool)  # a switch was asked for and is not confirmed yet
    runtime_changed = Signal(object)  # RunningEngine
    options_changed = Signal(object)  # LiveOptions (mirror, passthrough, motion, crop framing)
    calibration_changed = Signal(object)  # Calibration
    outputs_changed = Signal(object)  # OutputsView
    view_changed = Signal(object)  # ViewOptions
    busy_changed = Signal(int)  # long operations the user waits for

    source = _field("source")
    avatar = _field("avatar")
    engine = _field("engine")
    engine_pending = _field("engine_pending")
    runtime = _field("runtime")
    options = _field("options")
    calibration = _field("calibration")
    outputs = _field("outputs")
    view = _field("view")
    busy = _field("busy")

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._source: str | None = None
        self._avatar: Path | None = None
        self._engine = EngineConfig()
        self._engine_pending = False
        self._runtime = RunningEngine()
        self._options = LiveOptions()
        self._calibration = Calibration()
        self._outputs = OutputsView()
        self._view = ViewOptions()
        self._busy = 0

    def add_busy(self, delta: int) -> None:
        self.busy = max(0, self.busy + delta)
