"""Typed, frozen configuration split by concern. No torch import, no I/O.

Change a value with ``dataclasses.replace(cfg, field=value)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ENGINE_NAMES = ("auto", "fomm", "landmarks")
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
    """Which engine runs and where.

    name:       "auto" (FOMM when a checkpoint is found, else landmarks), "fomm", "landmarks".
    checkpoint: path to a FOMM checkpoint; None searches checkpoints/.
    device:     "auto", "cpu", "cuda", "mps" (resolved once at start-up).
    half:       None = half precision generator on CUDA only; True/False forces it.
    backend:    "auto" | "torch" | "onnx" for the FOMM per-frame path on CPU.
    model_config: the authors' YAML config for the checkpoint; None = a YAML beside the
                checkpoint with the same name (vox-adv-cpk.yaml for vox-adv-cpk.pth.tar),
                else the shipped vox-256 config.
    """

    name: str = "auto"
    checkpoint: str | None = None
    device: str = "auto"
    half: bool | None = None
    backend: str = "auto"
    model_config: str | None = None


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
    """Face detection / landmarks back-end."""

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
    """Toggles the user flips while a session runs (see Session.update_options)."""

    mirror: bool = False
    passthrough: bool = False
    motion: MotionOptions = field(default_factory=MotionOptions)
    crop: CropConfig = field(default_factory=CropConfig)
    debug: bool = False  # fill FrameEvent.debug from Engine.debug_info() (costs time on FOMM)
