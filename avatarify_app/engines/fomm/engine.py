"""The FOMM engine: a portrait animated by the keypoint motion of driving face crops.

Per avatar (``set_source``), everything that depends on the source alone is computed once:
its keypoints and Jacobians, the generator's encoder features and the downsampled source the
dense motion network warps, and (with a reference) the relative-motion transform. Per frame
only three stages run: keypoints of the driving crop, dense motion, warp + decoder.

Backends: "torch" runs BN-folded copies of the modules eagerly (half precision generator on
CUDA by default: keypoints, Jacobian inverses and relative motion stay float32); "onnx" runs
the same stages on ONNX Runtime's CPU provider from graphs exported once and cached on disk.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from avatarify_app.config import EngineConfig, MotionOptions
from avatarify_app.engines.device import describe_device, resolve_device
from avatarify_app.engines.fomm.fuse import fuse_for_inference
from avatarify_app.engines.fomm.stages import DecodeStage, KeypointStage, MotionStage
from avatarify_app.errors import BadImageError, ConfigError, EngineError
from avatarify_app.frames import check_frame, resize
from avatarify_app.models import OcclusionAwareGenerator, load_fomm, matmul_2x2
from avatarify_app.models.fomm.keypoint_detector import KPDetector
from avatarify_app.motion import relative_transform

log = logging.getLogger(__name__)

FOMM_BACKENDS = ("auto", "torch", "onnx")


def resolve_backend(backend: str, device: torch.device, half: bool) -> str:
    """"auto" -> onnx on CPU (float32) when onnxruntime is importable, else torch."""
    if backend not in FOMM_BACKENDS:
        raise ConfigError(f"Unknown FOMM backend {backend!r}", "Use auto, torch or onnx.")
    onnx_ok = importlib.util.find_spec("onnxruntime") is not None
    if backend == "auto":
        return "onnx" if device.type == "cpu" and not half and onnx_ok else "torch"
    if backend == "onnx":
        if device.type != "cpu":
            raise ConfigError(f"The onnx backend runs on the CPU only, not on {device}.",
                              "Use --backend torch on a GPU, or --device cpu.")
        if half:
            raise ConfigError("The onnx backend runs in float32 only.", "Drop --half or use --backend torch.")
        if not onnx_ok:
            raise ConfigError("The onnx backend needs onnxruntime, which is not installed.",
                              "pip install onnxruntime, or use --backend torch.")
    return backend


def resolve_half(device: torch.device, half: bool | None) -> bool:
    """Whether the generator runs in float16: the user's choice (``--half``/``--no-half``,
    ``EngineConfig.half``) when made, else on for CUDA only (``EngineConfig.resolved_half``)."""
    return EngineConfig(half=half).resolved_half(device.type == "cuda")


@dataclass
class _Source:
    """What the engine keeps per avatar (all on the engine's device)."""

    kp_value: torch.Tensor  # 1xKx2 float32
    kp_jacobian: torch.Tensor  # 1xKx2x2 float32
    features: torch.Tensor  # 1xCxhxw (generator dtype)
    small: torch.Tensor  # 1x3xh'xw' (generator dtype)


class FommEngine:
    """``Engine`` (engines/base.py) over the First Order Motion Model."""

    name = "fomm"

    def __init__(self, kp_detector: KPDetector, generator: OcclusionAwareGenerator, *,
                 device: str | torch.device = "cpu", half: bool | None = None, backend: str = "auto",
                 options: MotionOptions | None = None, size: int = 256, fuse: bool = True,
                 winograd: bool | None = None) -> None:
        if generator.dense_motion_network is None:
            raise ConfigError("The FOMM engine needs a generator with dense_motion_params.")
        self._device = resolve_device(device) if isinstance(device, str) else torch.device(device)
        self.half = resolve_half(self._device, half)
        self.backend = resolve_backend(backend, self._device, self.half)
        self.size = size
        self.options = options or MotionOptions()
        self._gen_dtype = torch.float16 if self.half else torch.float32
        kp_detector = kp_detector.eval()
        generator = generator.eval()
        # Winograd bottleneck (fomm_winograd): float32 on the CPU only (float16 loses too much in
        # the transforms, and cuDNN picks its own algorithms anyway).
        winograd = (True if winograd is None else bool(winograd)) and fuse
        winograd = winograd and self._device.type == "cpu" and not self.half
        if fuse:
            kp_run = fuse_for_inference(kp_detector, subpixel=True)
            gen_run = fuse_for_inference(generator, subpixel=True, winograd=winograd)
        else:
            kp_run, gen_run = kp_detector, generator
        self._kp = KeypointStage(kp_run).to(self._device).eval()
        self._encoder = gen_run.to(self._device, self._gen_dtype).eval()
        self._motion = MotionStage(gen_run.dense_motion_network).eval()
        self._decode = DecodeStage(gen_run).eval()
        self._onnx: dict[str, object] = {}
        if self.backend == "onnx":
            self._build_onnx(kp_detector, generator, winograd)
        self.device = f"{describe_device(self._device, self.half)} {self.backend}"
        self._source: _Source | None = None
        self._reference: tuple[torch.Tensor, torch.Tensor] | None = None
        self._transform: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._last: dict[str, torch.Tensor] = {}
        # Per-stage timing costs a GPU synchronisation per stage; on the CPU it is free.
        self.profile = self._device.type == "cpu"
        self._timings: dict[str, float] = {}
        log.info("FOMM engine on %s", self.device)

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_config(cls, config: EngineConfig, checkpoint_path: str | Path,
                    options: MotionOptions | None = None, *, model_params=None, size: int = 256) -> FommEngine:
        """Load ``checkpoint_path`` (model_params: None = shipped vox-256) and build the engine."""
        kp_detector, generator = load_fomm(checkpoint_path, model_params)
        return cls(kp_detector, generator, device=config.device, half=config.half,
                   backend=config.option("backend", "auto"), options=options, size=size)

    def _build_onnx(self, kp_detector: nn.Module, generator: nn.Module, winograd: bool) -> None:
        from avatarify_app.engines.fomm import onnx as fomm_onnx

        extra = "|".join(f"{type(m).__name__}:{_hyper(m)}" for m in (kp_detector, generator))
        key = fomm_onnx.fingerprint({"kp_detector": kp_detector, "generator": generator},
                                    f"{extra}|size={self.size}|winograd={winograd}")
        folder = fomm_onnx.cache_directory(key)
        image = torch.zeros(1, 3, self.size, self.size)
        with torch.no_grad():
            value, jac = self._kp(image)
            cache = self._encoder.encode_source(image)
            deformation, occlusion = self._motion(cache["small"], value, jac, value, jac)
        examples = {
            "keypoints": (self._kp, (image,)),
            "motion": (self._motion, (cache["small"], value, jac, value, jac)),
            "decode": (self._decode, (cache["features"], deformation, occlusion)),
        }
        for name, (module, args) in examples.items():
            path = fomm_onnx.export_graph(module, args, folder / f"{name}.onnx")
            self._onnx[name] = fomm_onnx.OnnxStage(path)
        self.onnx_dir = folder

    # ----------------------------------------------------------------- frame <-> tensor
    def _to_tensor(self, image: np.ndarray, name: str) -> torch.Tensor:
        """Frame (uint8 HxWx3 RGB) -> 1x3xSxS float32 in [0, 1] on the device."""
        frame = check_frame(image, name)
        if frame.shape[:2] != (self.size, self.size):
            frame = resize(frame, (self.size, self.size))
        t = torch.from_numpy(frame).to(self._device).permute(2, 0, 1).unsqueeze(0)
        return t.float().div_(255.0)

    def _to_frame(self, prediction: torch.Tensor) -> np.ndarray:
        """1x3xSxS in [0, 1] -> frame."""
        out = prediction[0].float().clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)
        return np.ascontiguousarray(out.permute(1, 2, 0).cpu().numpy())

    # ----------------------------------------------------------------- stages
    def _keypoints(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.backend == "onnx":
            return self._onnx["keypoints"](image)
        value, jac = self._kp(image)
        return value.float(), jac.float()

    def _run_motion(self, small, value, jac, src: _Source) -> tuple[torch.Tensor, torch.Tensor]:
        if self.backend == "onnx":
            return self._onnx["motion"](small, value, jac, src.kp_value, src.kp_jacobian)
        return self._motion(small, value, jac, src.kp_value, src.kp_jacobian)

    def _run_decode(self, features, deformation, occlusion) -> torch.Tensor:
        if self.backend == "onnx":
            return self._onnx["decode"](features, deformation, occlusion)[0]
        return self._decode(features, deformation.to(self._gen_dtype), occlusion.to(self._gen_dtype))

    # ----------------------------------------------------------------- Engine protocol
    def set_source(self, image: np.ndarray, landmarks: np.ndarray | None = None) -> None:
        try:
            check_frame(image, "avatar image")
        except ValueError as err:
            raise BadImageError(f"The avatar is not a usable picture: {err}") from err
        with torch.inference_mode():
            source = self._to_tensor(image, "source")
            value, jac = self._keypoints(source)
            cache = self._encoder.encode_source(source.to(self._gen_dtype))
            self._source = _Source(value, jac, cache["features"], cache["small"])
            self._update_transform()

    def set_reference(self, image: np.ndarray | None, landmarks: np.ndarray | None = None) -> None:
        if image is None:
            self._reference = None
        else:
            with torch.inference_mode():
                self._reference = self._keypoints(self._to_tensor(image, "reference"))
        self._update_transform()

    def has_reference(self) -> bool:
        return self._reference is not None

    def reset(self) -> None:
        """Forget the reference; the next predicted frame becomes it."""
        self.set_reference(None)

    def set_options(self, options: MotionOptions) -> None:
        self.options = options
        self._update_transform()

    def _update_transform(self) -> None:
        """Relative motion as value = s * kp + offset, J = J_d @ right (float32, once per change)."""
        if self._source is None:
            self._transform = None
            return
        src = {"value": self._source.kp_value, "jacobian": self._source.kp_jacobian}
        ref = None if self._reference is None else {"value": self._reference[0], "jacobian": self._reference[1]}
        self._transform = relative_transform(src, ref, relative=self.options.relative,
                                             adapt_movement_scale=self.options.adapt_scale)

    def predict(self, image: np.ndarray, landmarks: np.ndarray | None = None) -> np.ndarray:
        self._timings = {}
        return self._predict(image, self._timings if self.profile else None)

    def timings(self) -> dict[str, float]:
        """Milliseconds per stage of the last ``predict`` (keypoints, dense_motion, generator)
        while ``profile`` is on (it synchronises the GPU between stages), else empty."""
        return dict(self._timings)

    def _sync(self) -> None:
        if self._device.type == "cuda":
            torch.cuda.synchronize(self._device)

    def _predict(self, image: np.ndarray, timings: dict[str, float] | None) -> np.ndarray:
        if self._source is None:
            raise EngineError("No avatar is set.", "Choose an avatar before animating.")
        src = self._source
        clock = time.perf_counter
        with torch.inference_mode():
            t0 = clock()
            driving = self._to_tensor(image, "driving")
            kp_value, kp_jac = self._keypoints(driving)
            if self._reference is None:  # the first frame becomes the reference in both modes
                self._reference = (kp_value, kp_jac)  # (absolute motion does not use it)
                self._update_transform()
            scale, offset, right = self._transform
            value = kp_value * scale + offset
            jac = matmul_2x2(kp_jac, right)
            if timings is not None:
                self._sync()
                t1 = clock()
            deformation, occlusion = self._run_motion(src.small, value, jac, src)
            if timings is not None:
                self._sync()
                t2 = clock()
            prediction = self._run_decode(src.features, deformation, occlusion)
            frame = self._to_frame(prediction)
            if timings is not None:
                t3 = clock()
                timings.update(keypoints=(t1 - t0) * 1e3, dense_motion=(t2 - t1) * 1e3, generator=(t3 - t2) * 1e3)
            self._last = {"driving_value": kp_value, "motion_value": value,
                          "deformation": deformation, "occlusion": occlusion}
            return frame

    def debug_info(self) -> dict[str, np.ndarray]:
        if self._source is None or not self._last:
            return {}
        s = self.size

        def px(v: torch.Tensor) -> np.ndarray:
            return ((v[0].float().cpu().numpy() + 1.0) * 0.5 * (s - 1)).astype(np.float32)

        deformation = self._last["deformation"][0].float().cpu().numpy()  # hxwx2, normalised
        deformation = cv2.resize(deformation, (s, s), interpolation=cv2.INTER_LINEAR)
        where = ((deformation + 1.0) * s - 1.0) * 0.5  # sampled position, crop pixels
        ys, xs = np.mgrid[0:s, 0:s].astype(np.float32)
        flow = np.ascontiguousarray(where - np.stack((xs, ys), axis=-1), dtype=np.float32)
        return {
            "source_keypoints": px(self._source.kp_value),
            "driving_keypoints": px(self._last["driving_value"]),
            "motion_keypoints_on_source": px(self._last["motion_value"]),
            "occlusion": np.ascontiguousarray(self._last["occlusion"][0, 0].float().cpu().numpy()),
            "flow": flow,
        }

    def close(self) -> None:
        for stage in self._onnx.values():
            stage.close()
        self._onnx.clear()
        self._source = None
        self._last = {}
        if self._device.type == "cuda":
            torch.cuda.empty_cache()


def _hyper(module: nn.Module) -> str:
    """Hyper-parameters that change the computation but not the state dict's shapes."""
    keys = ("temperature", "scale_factor", "kp_variance", "num_kp", "num_jacobian_maps")
    found = []
    for name, m in module.named_modules():
        for k in keys:
            if hasattr(m, k) and not isinstance(getattr(m, k), (nn.Module, torch.Tensor)):
                found.append(f"{name}.{k}={getattr(m, k)}")
        if isinstance(m, nn.Conv2d):
            found.append(f"{name}.pad={m.padding}")
    return ",".join(found)
