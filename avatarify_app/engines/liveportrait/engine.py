"""The LivePortrait engine: the authors' released networks animating a portrait live.

Per avatar (``set_source``), from our square crop and its mesh: the authors' source crop
(``crop.SOURCE_RULE``, turned upright), its 3D appearance feature volume and keypoints, the
eye/lip open ratios, and the paste-back geometry. Per reference (``set_reference``, or the next
frame after ``None``): the driving crop window (``crop.DRIVING_RULE``; kept for every frame
until the reference changes, as the authors keep one box per driving video) and the
reference's keypoints. Per frame: the motion extractor on the driving crop, the keypoint maths
of ``drive.py`` (float32, with stitching and retargeting), warping and decoding (the runtime,
half precision on CUDA), and the 512 px result pasted into the source crop at ``output_size``.

Crop sizes: the engine takes ``size`` = 512 crops. The authors' crops cover ~0.8 of our
crop's side (their box is 2.2-2.3x the brows-to-chin extent, ours 2.38x the forehead-to-chin
height), so from a 512 crop the 256 px network input is shrunk (area filter), never enlarged,
and the 512 px output lands in a 512 frame at ~0.8 scale instead of being squeezed into 256.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avatarify_app.config import EngineConfig, MotionOptions
from avatarify_app.engines.device import describe_device, resolve_device
from avatarify_app.engines.liveportrait.crop import (
    DRIVING_RULE,
    SOURCE_RULE,
    PasteBack,
    Window,
    cut,
    window_for,
)
from avatarify_app.engines.liveportrait.drive import FOLLOW, REGIONS, DriveSettings, KeypointDriver, Keypoints
from avatarify_app.engines.liveportrait.ratios import OpenRatios, open_ratios
from avatarify_app.engines.liveportrait.runtime import make_runtime, resolve_backend
from avatarify_app.errors import BadImageError, ConfigError, EngineError, NoFaceError
from avatarify_app.frames import check_frame, resize
from avatarify_app.models import LivePortraitModels, load_liveportrait

log = logging.getLogger(__name__)

CROP_SIZE = 512
OUTPUT_SIZE = 512
INPUT_SIZE = 256  # the networks' input (the authors' input_shape)

# Live options -> DriveSettings fields.
CONTROL_FIELDS = {
    "stitching": "stitching",
    "driving_multiplier": "multiplier",
    "expression_friendly": "expression_friendly",
    "animation_region": "region",
    "eye_open": "eye_open",
    "mouth_open": "mouth_open",
    "retargeting": "retargeting",
    "normalize_lip": "normalize_lip",
}


def settings_from(values: Mapping[str, Any], base: DriveSettings | None = None) -> DriveSettings:
    """``base`` with the live options in ``values`` applied (unknown keys ignored)."""
    changes = {}
    for key, value in values.items():
        field = CONTROL_FIELDS.get(key)
        if field is None or value is None:
            continue
        if field == "region":
            if value not in REGIONS:
                raise ConfigError(f"--animation-region: {value!r} is not one of {', '.join(REGIONS)}.")
            changes[field] = str(value)
        elif field in ("multiplier", "eye_open", "mouth_open"):
            changes[field] = float(value)
        else:
            changes[field] = bool(value)
    return (base or DriveSettings()).changed(**changes)


@dataclass
class _Source:
    window: Window  # the authors' source crop, in our crop's px
    feature: torch.Tensor  # 1xCxDxhxw float32
    keypoints: Keypoints
    background: np.ndarray  # our source crop at the output size
    paste: PasteBack | None = None


class LivePortraitEngine:
    """``Engine`` (engines/base.py) over the LivePortrait networks."""

    name = "liveportrait"

    def __init__(self, models: LivePortraitModels, *, device: str | torch.device = "cpu", half: bool | None = None,
                 backend: str = "auto", options: MotionOptions | None = None,
                 controls: Mapping[str, Any] | None = None, size: int = CROP_SIZE,
                 output_size: int = OUTPUT_SIZE, input_size: int | None = None) -> None:
        self._device = resolve_device(device) if isinstance(device, str) else torch.device(device)
        self.half = (self._device.type == "cuda") if half is None else bool(half)
        self.backend = resolve_backend(backend, self._device, self.half)
        self.size, self.output_size = int(size), int(output_size)
        self.input_size = int(INPUT_SIZE if input_size is None else input_size)
        self.runtime = make_runtime(self.backend, models, self._device, self.half)
        self.half = bool(getattr(self.runtime, "half", self.half))  # what really runs (no autocast on mps)
        mlps = models.stitching_retargeting_module
        self._mlps = None if mlps is None else {k: m.to(self._device).float().eval() for k, m in mlps.items()}
        self.options = options or MotionOptions()
        self.settings = settings_from(controls or {}, DriveSettings(relative=self.options.relative))
        self._driver = KeypointDriver(self._mlps)
        self._source: _Source | None = None
        self._window: Window | None = None  # driving crop, from the reference
        self._mesh = None
        self._last: dict[str, Any] = {}
        self._timings: dict[str, float] = {}
        self._t_decoded = 0.0
        self.device = f"{describe_device(self._device, self.half)} {self.backend}"
        if self._mlps is None:
            log.warning("no stitching/retargeting weights: stitching and eye/lip retargeting are off")
        log.info("LivePortrait engine on %s", self.device)

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_config(cls, config: EngineConfig, folder: str | Path, options: MotionOptions | None = None,
                    **kwargs: Any) -> LivePortraitEngine:
        """Load the released folder (model_config: None = the released sizes) and build the engine."""
        models = load_liveportrait(folder, config.option("model_config"))
        return cls(models, device=config.device, half=config.half, backend=config.option("backend", "auto"),
                   options=options, controls=config.options, **kwargs)

    # ----------------------------------------------------------------- frame <-> tensor
    def _tensor(self, image: np.ndarray) -> torch.Tensor:
        """Frame -> 1x3xHxW float32 in [0, 1] on the device."""
        t = torch.from_numpy(image).to(self._device).permute(2, 0, 1).unsqueeze(0)
        return t.float().div_(255.0)

    @staticmethod
    def _frame(image: torch.Tensor) -> np.ndarray:
        """1x3xHxW in [0, 1] -> frame."""
        out = image[0].float().clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
        return np.ascontiguousarray(out.permute(1, 2, 0).cpu().numpy())

    def _landmarks(self, image: np.ndarray, what: str) -> np.ndarray:
        if self._mesh is None:
            from avatarify_app.tracking import FaceMesh

            self._mesh = FaceMesh(static=True)
        found = self._mesh.landmarks(image)
        if found is None:
            raise NoFaceError(f"No face was found in the {what}.")
        return found

    def _prepare(self, image: np.ndarray, landmarks: np.ndarray | None, what: str) -> tuple[np.ndarray, np.ndarray]:
        """The crop at ``size`` and its (468, 2) mesh in its px (found when not given)."""
        try:
            frame = check_frame(image, what)
        except ValueError as err:
            raise BadImageError(f"The {what} is not a usable picture: {err}") from err
        lms = None if landmarks is None else np.asarray(landmarks, np.float32)
        if frame.shape[:2] != (self.size, self.size):
            if lms is not None:
                lms = lms * np.float32(self.size / frame.shape[1])
            frame = resize(frame, (self.size, self.size))
        if lms is None or lms.ndim != 2 or lms.shape[0] < 468:
            lms = self._landmarks(frame, what)
        return frame, lms

    def _keypoints(self, crop: np.ndarray) -> Keypoints:
        return Keypoints.from_raw(self.runtime.motion(self._tensor(crop)))

    # ----------------------------------------------------------------- Engine protocol
    def set_source(self, image: np.ndarray, landmarks: np.ndarray | None = None) -> None:
        frame, lms = self._prepare(image, landmarks, "avatar image")
        window = window_for(lms, SOURCE_RULE)
        crop = cut(frame, window, self.input_size)
        x = self._tensor(crop)
        feature = self.runtime.appearance(x)
        keypoints = self._keypoints(crop)
        self._driver.set_source(keypoints, open_ratios(lms))
        background = frame if self.output_size == self.size else resize(frame, (self.output_size, self.output_size))
        self._source = _Source(window, feature, keypoints, background)
        self._last = {}

    def set_source_crop(self, crop: np.ndarray, ratios: OpenRatios | None = None) -> None:
        """Set the avatar from the authors' source crop itself (input_size px), skipping our
        cropping: what their pipeline does with ``flag_do_crop`` off. The output is then that
        crop animated (no paste-back)."""
        frame = check_frame(crop, "source crop")
        feature = self.runtime.appearance(self._tensor(frame))
        keypoints = self._keypoints(frame)
        self._driver.set_source(keypoints, ratios)
        side = float(frame.shape[0])
        self._source = _Source(Window(side / 2, side / 2, side), feature, keypoints, frame)
        self._last = {}

    def set_reference(self, image: np.ndarray | None, landmarks: np.ndarray | None = None) -> None:
        if image is None:
            self._window = None
            self._driver.set_reference(None)
            return
        frame, lms = self._prepare(image, landmarks, "reference frame")
        window = window_for(lms, DRIVING_RULE)
        self._driver.set_reference(self._keypoints(cut(frame, window, self.input_size)))
        self._window = window

    def set_reference_crop(self, crop: np.ndarray) -> None:
        """The reference from a driving crop as the networks see it (input_size px), no cropping."""
        self._driver.set_reference(self._keypoints(check_frame(crop, "reference crop")))
        self._window = None

    def has_reference(self) -> bool:
        return self._driver.reference is not None

    def reset(self) -> None:
        """Forget the reference; the next predicted frame becomes it."""
        self.set_reference(None)

    def set_options(self, options: MotionOptions) -> None:
        self.options = options
        self.settings = self.settings.changed(relative=options.relative)

    def set_controls(self, values: Mapping[str, Any]) -> None:
        """Change live options (stitching, driving_multiplier, expression_friendly,
        animation_region, eye_open, mouth_open, retargeting, normalize_lip) from the next frame."""
        self.settings = settings_from(values, self.settings)

    def predict(self, image: np.ndarray, landmarks: np.ndarray | None = None) -> np.ndarray:
        if self._source is None:
            raise EngineError("No avatar is set.", "Choose an avatar before animating.")
        clock = time.perf_counter
        t0 = clock()
        frame, lms = self._prepare(image, landmarks, "driving frame") if self._needs_landmarks() else \
            (self._sized(image), None)
        if self._driver.reference is None:
            self.set_reference(frame, lms)
        crop = cut(frame, self._window, self.input_size) if self._window is not None else frame
        lp = self._animate(crop, None if lms is None else open_ratios(lms), t0)
        out = self._paste(lp)
        self._timings["paste"] = (clock() - self._t_decoded) * 1e3
        return out

    def predict_crop(self, crop: np.ndarray, ratios: OpenRatios | None = None) -> np.ndarray:
        """Animate with a driving crop as the networks see it (input_size px); returns the
        decoder's output frame (the authors' ``I_p``), without paste-back."""
        if self._source is None:
            raise EngineError("No avatar is set.", "Choose an avatar before animating.")
        frame = check_frame(crop, "driving crop")
        if self._driver.reference is None:
            self.set_reference_crop(frame)
        return self._animate(frame, ratios, time.perf_counter())

    def driving_keypoints(self, crop: np.ndarray, ratios: OpenRatios | None = None) -> torch.Tensor:
        """The keypoints the warping module would get for this driving crop (input_size px)."""
        return self._driver(self._keypoints(check_frame(crop, "driving crop")), self.settings, ratios)

    # ----------------------------------------------------------------- internals
    def _sized(self, image: np.ndarray) -> np.ndarray:
        try:
            frame = check_frame(image, "driving frame")
        except ValueError as err:
            raise BadImageError(f"The driving frame is not a usable picture: {err}") from err
        return frame if frame.shape[:2] == (self.size, self.size) else resize(frame, (self.size, self.size))

    def _needs_landmarks(self) -> bool:
        """Whether this frame's mesh is used: for the driver's open ratios (retargeting that
        follows the driver), or to frame a new reference."""
        s = self.settings
        follow = s.retargeting and (s.eye_open < 0 or s.mouth_open < 0)
        return follow or self._driver.reference is None

    def _animate(self, crop: np.ndarray, ratios: OpenRatios | None, t0: float) -> np.ndarray:
        clock = time.perf_counter
        source = self._source
        driving = self._keypoints(crop)
        t1 = clock()
        x_d = self._driver(driving, self.settings, ratios)
        t2 = clock()
        out = self.runtime.warp_decode(source.feature, self._driver.x_s, x_d)
        lp = self._frame(out["out"])
        self._t_decoded = t3 = clock()
        self._timings = {"motion": (t1 - t0) * 1e3, "stitching": (t2 - t1) * 1e3}
        inner = getattr(self.runtime, "timings", lambda: {})()
        if inner:
            self._timings.update(inner)
        else:
            self._timings["warp_decode"] = (t3 - t2) * 1e3
        self._last = {"driving": driving, "x_d": x_d, "occlusion": out.get("occlusion_map"), "lp": lp}
        return lp

    def _paste(self, lp: np.ndarray) -> np.ndarray:
        source = self._source
        if source.paste is None or source.paste.lp_side != lp.shape[0]:
            source.paste = PasteBack(source.background, self.size, source.window, lp.shape[0])
        return source.paste(lp)

    def timings(self) -> dict[str, float]:
        """Milliseconds per stage of the last ``predict``: motion (driving crop and motion
        extractor), stitching (keypoint maths, stitching and retargeting MLPs), warp, decode
        (CPU; one ``warp_decode`` figure on a GPU, where splitting costs a sync) and paste."""
        return dict(self._timings)

    def debug_info(self) -> dict[str, np.ndarray]:
        if self._source is None or not self._last:
            return {}
        source = self._source

        def project(x: torch.Tensor, window: Window | None) -> np.ndarray:
            n = self.input_size
            q = (x[0, :, :2].float().cpu().numpy() + 1.0) * 0.5 * n
            if window is None:
                return (q * (self.size / n)).astype(np.float32)
            return window.points_to_image(q, n)

        out = {
            "source_keypoints": project(self._driver.x_s, source.window),
            "driving_keypoints": project(self._last["driving"].transformed(), self._window),
            "motion_keypoints_on_source": project(self._last["x_d"], source.window),
        }
        occlusion = self._last.get("occlusion")
        if occlusion is not None:
            out["occlusion"] = np.ascontiguousarray(occlusion[0, 0].clamp(0, 1).cpu().numpy(), dtype=np.float32)
        return out

    def close(self) -> None:
        self.runtime.close()
        if self._mesh is not None:
            self._mesh.close()
            self._mesh = None
        self._source = None
        self._last = {}


__all__ = ["FOLLOW", "LivePortraitEngine", "settings_from"]
