"""The network calls of one LivePortrait frame behind a small interface, so runtimes can differ.

A runtime owns the four big networks on one device and does three things, all on float32
tensors in and out (``Runtime``): the appearance feature volume of a source crop, the motion
extractor's raw output for a crop, and warping + decoding for a pair of keypoint sets. The
keypoint maths around them (``drive.py``) stays in float32 on the engine's side, and so do the
stitching and retargeting MLPs (tiny; the authors run them outside autocast too).

``EagerRuntime`` runs our torch modules eagerly; on CUDA (by default) under
``torch.autocast(float16)`` as the authors' ``inference_ctx`` does: weights stay float32,
convolutions and matrix products run in float16, outputs come back as float32. Other runtimes
(``fast.py``, a faster CPU runtime) take the same constructor arguments
``(models, device, half)`` and provide the same methods.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import time
from typing import Protocol

import torch

from avatarify_app.errors import ConfigError
from avatarify_app.models import LivePortraitModels

log = logging.getLogger(__name__)

LP_BACKENDS = ("auto", "torch", "fast")
FAST_MODULE = "avatarify_app.engines.liveportrait.fast"


class Runtime(Protocol):
    """The per-frame network calls (images Bx3xHxW float32 in [0, 1] on the runtime's device)."""

    name: str

    def appearance(self, image: torch.Tensor) -> torch.Tensor:
        """Source crop -> feature volume BxCxDxhxw (float32)."""

    def motion(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Crop -> the motion extractor's raw output (pitch/yaw/roll Bx66 logits, t Bx3,
        exp and kp Bx3N, scale Bx1), float32."""

    def warp_decode(self, feature_3d: torch.Tensor, kp_source: torch.Tensor,
                    kp_driving: torch.Tensor) -> dict[str, torch.Tensor]:
        """-> {'out': Bx3xHxW image (float32, not clamped), 'occlusion_map': Bx1xhxw or absent}."""

    def close(self) -> None:
        """Release device memory and sessions."""


class EagerRuntime:
    """Our torch modules, eager, autocast to float16 when ``half``."""

    name = "torch"

    def __init__(self, models: LivePortraitModels, device: torch.device, half: bool = False) -> None:
        self.device = torch.device(device)
        self.half = bool(half) and self.device.type in ("cuda", "cpu")
        self.appearance_net = models.appearance_feature_extractor.to(self.device).eval()
        self.motion_net = models.motion_extractor.to(self.device).eval()
        self.warping = models.warping_module.to(self.device).eval()
        self.decoder = models.spade_generator.to(self.device).eval()
        self.profile = self.device.type == "cpu"  # per-stage times cost a GPU sync elsewhere
        self._timings: dict[str, float] = {}

    def _autocast(self):
        if not self.half:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.float16)

    def appearance(self, image: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), self._autocast():
            return self.appearance_net(image).float()

    def motion(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.inference_mode(), self._autocast():
            out = self.motion_net(image)
        return {k: v.float() for k, v in out.items()}

    def warp_decode(self, feature_3d: torch.Tensor, kp_source: torch.Tensor,
                    kp_driving: torch.Tensor) -> dict[str, torch.Tensor]:
        clock = time.perf_counter
        with torch.inference_mode(), self._autocast():
            t0 = clock()
            warped = self.warping(feature_3d, kp_driving=kp_driving, kp_source=kp_source)
            t1 = clock()
            image = self.decoder(feature=warped["out"])
            t2 = clock()
        if self.profile:
            self._timings = {"warp": (t1 - t0) * 1e3, "decode": (t2 - t1) * 1e3}
        out = {"out": image.float()}
        if warped.get("occlusion_map") is not None:
            out["occlusion_map"] = warped["occlusion_map"].float()
        return out

    def timings(self) -> dict[str, float]:
        """ms of the last warp_decode's two halves (CPU only; empty on a GPU)."""
        return dict(self._timings)

    def close(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def fast_available() -> bool:
    return importlib.util.find_spec(FAST_MODULE) is not None


def resolve_backend(backend: str, device: torch.device, half: bool) -> str:
    """"auto" -> the fast CPU runtime where it is installed (CPU, float32), else torch."""
    if backend not in LP_BACKENDS:
        raise ConfigError(f"Unknown LivePortrait backend {backend!r}.", "Use auto, torch or fast.")
    if backend == "auto":
        return "fast" if device.type == "cpu" and not half and fast_available() else "torch"
    if backend == "fast" and not fast_available():
        raise ConfigError("The fast LivePortrait runtime is not available in this version of the app.",
                          "Use --backend torch (or auto).")
    return backend


def make_runtime(backend: str, models: LivePortraitModels, device: torch.device, half: bool) -> Runtime:
    """The runtime ``backend`` names (already resolved), built on ``device``."""
    if backend == "fast":
        factory = getattr(importlib.import_module(FAST_MODULE), "FastRuntime", None)
        if factory is None:
            raise ConfigError(f"{FAST_MODULE} has no FastRuntime.", "Use --backend torch.")
        return factory(models, device, half)
    return EagerRuntime(models, device, half)
