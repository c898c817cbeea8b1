"""Typed, frozen configuration split by concern. No torch import, no I/O.

Change a value with ``dataclasses.replace(cfg, field=value)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEVICE_NAMES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class MotionOptions:
    """How driving motion is transferred onto the source (FOMM paper, Sec. 3 and the demo).

    relative:    transfer keypoint displacement / Jacobian ratio against the reference
                 driving frame (True) or use driving keypoints as they are (False).
    adapt_scale: scale displacements by sqrt(hull area source / hull area reference).
    """

    relative: bool = True
    adapt_scale: bool = True


@dataclass(frozen=True)
class EngineConfig:
    """Which engine runs, where, and with what engine-specific options.

    name:    "auto" (see ``engines.registry``: the registered engines in order, the first whose
             needs are met) or a registered engine's name.
    device:  "auto", "cpu", "cuda", "mps" (resolved once, when the engine is built).
    half:    half precision for the networks: None = the default (on for CUDA, off elsewhere),
             True/False = the user's explicit choice (``--half/--no-half``).
    options: the engine's own settings by ``EngineOption.name`` (e.g. ``checkpoint``,
             ``model_config``, ``backend``, ``server``); see each engine's spec.
    """

    name: str = "auto"
    device: str = "auto"
    half: bool | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash((self.name, self.device, self.half, tuple(sorted(self.options.items(), key=str))))

    def option(self, key: str, default: Any = None) -> Any:
        value = self.options.get(key)
        return default if value is None else value

    @property
    def checkpoint(self) -> str | None:
        """The weights the engine loads (a file or a folder), or None to search checkpoints/."""
        return self.option("checkpoint")

    def replace(self, **changes: Any) -> EngineConfig:
        return dataclasses.replace(self, **changes)

    def with_options(self, **changes: Any) -> EngineConfig:
        """A copy with these options set (None removes one)."""
        options = {**self.options, **changes}
        return dataclasses.replace(self, options={k: v for k, v in options.items() if v is not None})

    def resolved_half(self, cuda: bool) -> bool:
        """Whether the networks run in half precision on a device that is (not) CUDA."""
        return cuda if self.half is None else bool(self.half)


@dataclass(frozen=True)
class CropConfig:
    """Automatic face framing plus the user's nudges (fractions of the crop side)."""

    size: int = 256
    zoom: float = 1.0
    offset_x: float = 0.0
    offset_y: float = 0.0
    # One Euro filter on the stream crop box.
    min_cutoff: float = 0.6
    beta: float = 0.02


@dataclass(frozen=True)
class TrackingConfig:
    """Face detection / landmarks back-end.

    crop: the framing a tracker or aligner uses when it runs on its own (``tracking``). A live
    ``Session`` frames the driving face with ``LiveOptions.crop`` (the one place for the user's
    zoom and offsets) and portraits the default way at that size; it refuses a different one here.
    """

    backend: str = "mediapipe"  # or "face_alignment" (only when its weights are on disk)
    min_detection_confidence: float = 0.5
    crop: CropConfig = field(default_factory=CropConfig)


@dataclass(frozen=True)
class VirtualCameraConfig:
    """pyvirtualcam output."""

    enabled: bool = True
    width: int = 1280
    height: int = 720
    fps: float = 30.0
    fit: str = "letterbox"  # or "fill"
    backend: str | None = None
    device: str | None = None


@dataclass(frozen=True)
class LiveOptions:
    """Toggles the user flips while a session runs (see Session.update_options).

    crop: how the driving face is framed (size, the user's zoom and offsets, smoothing): the one
    crop setting of a live session.
    """

    mirror: bool = False
    passthrough: bool = False
    motion: MotionOptions = field(default_factory=MotionOptions)
    crop: CropConfig = field(default_factory=CropConfig)
    debug: bool = False  # fill FrameEvent.debug from Engine.debug_info() (costs time on FOMM)
