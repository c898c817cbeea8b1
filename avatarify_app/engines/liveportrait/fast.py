"""LivePortrait's per-frame networks rewritten for speed, same outputs to float rounding.

``FastRuntime`` runs the motion extractor as it is and the warping module and SPADE decoder as
inference-only rewrites (``_fast_warp``, ``_fast_spade``): fewer multiplies where the maths
allows it exactly (phase-decomposed convs of upsampled maps, folded BatchNorm and shortcut
convs, separable sampling and heatmaps, an FFT convolution for the 7x7x7 mask conv) and
Winograd F(4x4, 3x3) for the 3x3 convs with many channels on the CPU. What depends on the
source only is computed once by ``prepare_source``.

Made for the CPU in float32. scripts/bench_liveportrait_cpu.py, 2 cores, quiet machine, one
driving frame (motion extractor, stitching, warping, decoder) with the source prepared: 5.7 s
against 8.9 s for the authors' eager modules (glibc malloc as it comes), 4.6 s against 7.2 s with
the allocator tuning below applied to both; 458 GFLOP against 1245 (counting Winograd's and the
FFT's own arithmetic). The image stays within 2e-4 of the reference modules' (0..1 scale).
Costs: ~1.1 GB of transformed weights (Winograd, FFT spectra) against 0.4 GB. It also runs on CUDA and in half precision (networks in
half, keypoint geometry and the FFT convolution in float32), without Winograd there.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass

import torch

from avatarify_app.engines.common.allocator import keep_freed_memory
from avatarify_app.engines.liveportrait._fast_spade import FastSPADEDecoder
from avatarify_app.engines.liveportrait._fast_warp import FastWarping, PreparedSource
from avatarify_app.models.liveportrait import LivePortraitModels

log = logging.getLogger(__name__)


@dataclass
class _Prepared:
    feature_3d: torch.Tensor
    kp_source: torch.Tensor
    source: PreparedSource


class FastRuntime:
    """The LivePortrait networks for inference: ``appearance(x)``, ``motion(x)``,
    ``prepare_source(feature_3d, kp_source)``, ``warp_decode(feature_3d, kp_source, kp_driving)``,
    ``timings()``, ``close()`` (the engine's ``runtime.Runtime`` protocol).

    Inputs and outputs are float32 tensors shaped as the networks take them (images Bx3x256x256
    in [0, 1], keypoints BxNx3); they move to ``device`` and back as needed. ``winograd``:
    "auto" (the 3x3 convs where it pays, CPU float32 only), True (every 3x3 conv; CPU float32
    only) or False. ``keep_memory`` (CPU): tune glibc's malloc for the whole process so large
    tensors reuse freed memory instead of fresh pages (``engines.common.allocator``).
    """

    name = "fast"

    def __init__(self, models: LivePortraitModels, device: str | torch.device = "cpu", half: bool = False,
                 winograd: bool | str = "auto", keep_memory: bool = True) -> None:
        self.device = torch.device(device)
        self.half = bool(half)
        self.profile = self.device.type == "cpu"  # per-stage times would cost a GPU sync elsewhere
        self._timings: dict[str, float] = {}
        if keep_memory and self.device.type == "cpu":
            keep_freed_memory()  # process-wide: large tensors stop paying page faults every frame
        self.dtype = torch.float16 if half else torch.float32
        if self.device.type != "cpu" or half:
            winograd = False  # the transforms lose too much in half; cuDNN picks its own algorithms
        models = models.eval()
        self.appearance_feature_extractor = self._placed(models.appearance_feature_extractor)
        self.motion_extractor = self._placed(models.motion_extractor)
        self.warping = FastWarping(models.warping_module, winograd=winograd).to(self.device, self.dtype)
        self.decoder = FastSPADEDecoder(models.spade_generator, winograd=winograd).to(self.device, self.dtype)
        self._prepared: _Prepared | None = None

    def _placed(self, module: torch.nn.Module) -> torch.nn.Module:
        """``module`` itself when it already sits on the device in the dtype, else a moved copy
        (the caller's modules are never changed)."""
        p = next(module.parameters())
        if p.device == self.device and p.dtype == self.dtype:
            return module
        return copy.deepcopy(module).to(self.device, self.dtype)

    def _in(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device, self.dtype)

    @staticmethod
    def _out(x: torch.Tensor | None) -> torch.Tensor | None:
        return None if x is None else x.float()

    @torch.inference_mode()
    def appearance(self, x: torch.Tensor) -> torch.Tensor:
        """Bx3xHxW image -> feature volume (per avatar)."""
        return self._out(self.appearance_feature_extractor(self._in(x)))

    @torch.inference_mode()
    def motion(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Bx3xHxW image -> the motion extractor's dict (raw bins, flat kp / exp)."""
        return {k: self._out(v) for k, v in self.motion_extractor(self._in(x)).items()}

    @torch.inference_mode()
    def prepare_source(self, feature_3d: torch.Tensor, kp_source: torch.Tensor) -> None:
        """Cache what depends on the source only; ``warp_decode`` with these same tensor objects
        reuses it (other tensors prepare anew and replace the cache)."""
        source = self.warping.prepare_source(self._in(feature_3d), kp_source.to(self.device, torch.float32))
        self._prepared = _Prepared(feature_3d, kp_source, source)

    def _source(self, feature_3d: torch.Tensor, kp_source: torch.Tensor) -> PreparedSource:
        p = self._prepared
        if p is None or p.feature_3d is not feature_3d or p.kp_source is not kp_source:
            self.prepare_source(feature_3d, kp_source)
        return self._prepared.source

    @torch.inference_mode()
    def warp_decode(self, feature_3d: torch.Tensor, kp_source: torch.Tensor, kp_driving: torch.Tensor,
                    ) -> dict[str, torch.Tensor | None]:
        """-> {'occlusion_map' Bx1xhxw or None, 'deformation' BxDxhxwx3, 'out' Bx3xHxW image in
        (0, 1)} (``out`` is the decoder's image, not the warped features)."""
        source = self._source(feature_3d, kp_source)
        t0 = time.perf_counter()
        warped = self.warping(source, kp_driving.to(self.device, torch.float32))
        t1 = time.perf_counter()
        image = self.decoder(warped["out"])
        if self.profile:
            self._timings = {"warp": (t1 - t0) * 1e3, "decode": (time.perf_counter() - t1) * 1e3}
        return {"occlusion_map": self._out(warped["occlusion_map"]), "deformation": self._out(warped["deformation"]),
                "out": self._out(image)}

    def timings(self) -> dict[str, float]:
        """ms of the last warp_decode's two halves (CPU only; empty on a GPU)."""
        return dict(self._timings)

    def close(self) -> None:
        """Drop the networks and the cached source (the object is unusable afterwards)."""
        self._prepared = None
        for name in ("appearance_feature_extractor", "motion_extractor", "warping", "decoder"):
            setattr(self, name, None)
