"""The driving keypoints of one frame: LivePortrait's motion transfer, stitching and retargeting.

Everything here is float32 torch on batch-1 tensors (the networks may run in half precision;
the keypoint maths never does). Following the authors' video pipeline
(``LivePortraitPipeline.execute``, source image, driving video), with s = source, d = this
driving frame and r = the reference driving frame (their first frame), and x_c the source's
canonical keypoints:

    relative:  R = R_d R_r^T R_s,  delta = exp_s + (exp_d - exp_r),
               scale = s_s * s_d / s_r,  t = t_s + (t_d - t_r)
    absolute:  R = R_d,  delta = exp_s with the expression rows the authors take from d,
               scale = s_s,  t = t_d
    t_z = 0;   x_d = scale * (x_c R + delta) + t

Animation regions restrict what comes from the driver (``REGIONS``): "pose" keeps the source's
expression, "exp" the source's pose, "lip" / "eyes" take only those expression rows; only
"all" takes the driver's scale. Then, as their Algorithm 1:

- "expression-friendly": x_d = x_s + (x_d - x_r') * m with x_r' the reference's own x_d and
  m = sqrt(hull volume(x_s) / hull volume(x_r')). The authors apply it in relative mode only,
  where x_r' is x_s and m is 1, so it changes nothing there (it is their default); here it also
  re-anchors absolute motion on the source at the reference frame, as their pipeline did before
  they restricted it (commit bbb2e33). Off by default, which is their behaviour in both modes.
- stitching: x_d + the stitching MLP's offsets (keypoints, then tx, ty);
- lip normalisation ("let the lip-open scalar be 0 at first"): when the source's mouth is open
  (lip ratio >= 0.03), the lip MLP's offsets towards a closed mouth are added to every frame;
- retargeting (eye and lip MLPs on the source keypoints and [source ratios, target ratio]):
  a target set by the user (``eye_open``/``mouth_open`` >= 0), or with ``retargeting`` on, the
  driver's measured ratio. The authors' (experimental) driver retargeting discards the rest of
  the motion in relative mode; here the motion stays and only the driver's eye (lip) expression
  rows are replaced by the source's, so the target alone decides the eyes (mouth) and the
  offsets are added (as their GUI's retargeting sliders add them to the driven keypoints);
- finally the driving multiplier: x_d = x_s + (x_d - x_s) * multiplier.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn

from avatarify_app.engines.liveportrait import FOLLOW
from avatarify_app.engines.liveportrait.ratios import OpenRatios
from avatarify_app.motion import (
    apply_stitching,
    headpose_to_degrees,
    retarget_eye,
    retarget_lip,
    rotation_matrix,
)

log = logging.getLogger(__name__)

REGIONS = ("all", "pose", "exp", "lip", "eyes")
# Expression rows (of the 21 released keypoints) the authors' absolute mode takes from the
# driver: whole rows, then single coordinates (row, columns).
EXP_ROWS = (1, 2, 6, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20)
EXP_PARTS = ((3, (1,)), (4, (1,)), (5, (2,)), (8, (2,)), (9, (1, 2)))
LIP_ROWS = (6, 12, 14, 17, 19, 20)
EYE_ROWS = (11, 13, 15, 16, 18)
LIP_NORMALIZE_THRESHOLD = 0.03


@dataclass(frozen=True)
class Keypoints:
    """One image's motion-extractor output in float32, batch 1 (the authors' ``x_info`` with R)."""

    kp: torch.Tensor  # 1xNx3 canonical keypoints x_c
    rotation: torch.Tensor  # 1x3x3, for row vectors (x_c @ R)
    exp: torch.Tensor  # 1xNx3 expression deformation
    scale: torch.Tensor  # 1x1
    t: torch.Tensor  # 1x3

    @classmethod
    def from_raw(cls, raw: Mapping[str, torch.Tensor]) -> Keypoints:
        """From the motion extractor's raw output (66-bin pose logits, flat kp / exp)."""
        kp = raw["kp"].float()
        bs = kp.shape[0]
        n = kp.shape[1] // 3 if kp.ndim == 2 else kp.shape[1]
        angles = [headpose_to_degrees(raw[k].float()).reshape(bs, 1) for k in ("pitch", "yaw", "roll")]
        return cls(kp=kp.reshape(bs, n, 3), rotation=rotation_matrix(*angles),
                   exp=raw["exp"].float().reshape(bs, n, 3), scale=raw["scale"].float().reshape(bs, 1),
                   t=raw["t"].float().reshape(bs, 3))

    @property
    def num_kp(self) -> int:
        return int(self.kp.shape[1])

    def transformed(self) -> torch.Tensor:
        """x = s * (x_c R + exp) + (tx, ty, 0): 1xNx3 (the authors' transform_keypoint)."""
        x = (self.kp @ self.rotation + self.exp) * self.scale[..., None]
        shift = torch.cat([self.t[:, :2], torch.zeros_like(self.t[:, 2:])], dim=1)
        return x + shift[:, None, :]


@dataclass(frozen=True)
class DriveSettings:
    """How driving motion reaches the source (the engine's live options)."""

    relative: bool = True
    stitching: bool = True
    multiplier: float = 1.0
    expression_friendly: bool = False
    region: str = "all"
    eye_open: float = FOLLOW
    mouth_open: float = FOLLOW
    retargeting: bool = False
    normalize_lip: bool = False

    def __post_init__(self) -> None:
        if self.region not in REGIONS:
            raise ValueError(f"animation region must be one of {', '.join(REGIONS)}, not {self.region!r}")

    def changed(self, **values) -> DriveSettings:
        return replace(self, **values)


def _rows(rows: Sequence[int], n: int) -> list[int]:
    return [r for r in rows if r < n]


def compose(source: Keypoints, driving: Keypoints, reference: Keypoints | None, settings: DriveSettings,
            keep_source_rows: Sequence[int] = ()) -> torch.Tensor:
    """x_d = scale (x_c R + delta) + t for one frame (see the module docstring); 1xNx3.

    ``keep_source_rows``: expression rows set back to the source's (retargeted eyes / mouth).
    """
    region = settings.region
    n = source.num_kp
    pose = region in ("all", "pose")
    delta = source.exp.clone()
    if settings.relative:
        if reference is None:
            raise ValueError("relative motion needs a reference frame")
        rotation = driving.rotation @ reference.rotation.transpose(1, 2) @ source.rotation if pose else source.rotation
        moved = source.exp + (driving.exp - reference.exp)
        if region in ("all", "exp"):
            delta = moved
        elif region in ("lip", "eyes"):
            rows = _rows(LIP_ROWS if region == "lip" else EYE_ROWS, n)
            delta[:, rows] = moved[:, rows]
        scale = source.scale * (driving.scale / reference.scale) if region == "all" else source.scale
        t = source.t + (driving.t - reference.t) if pose else source.t.clone()
    else:
        rotation = driving.rotation if pose else source.rotation
        if region in ("all", "exp"):
            rows = _rows(EXP_ROWS, n)
            delta[:, rows] = driving.exp[:, rows]
            for row, cols in EXP_PARTS:
                if row < n:
                    delta[:, row, list(cols)] = driving.exp[:, row, list(cols)]
        elif region in ("lip", "eyes"):
            rows = _rows(LIP_ROWS if region == "lip" else EYE_ROWS, n)
            delta[:, rows] = driving.exp[:, rows]
        scale = source.scale
        t = driving.t.clone() if pose else source.t.clone()
    if keep_source_rows:
        rows = _rows(keep_source_rows, n)
        delta[:, rows] = source.exp[:, rows]
    t[..., 2] = 0.0
    return scale[..., None] * (source.kp @ rotation + delta) + t[:, None, :]


def hull_volume(x: torch.Tensor) -> float:
    """Volume of the convex hull of Nx3 points (scipy's Qhull); 0 when they span no volume."""
    from scipy.spatial import ConvexHull, QhullError

    pts = x.detach().reshape(-1, 3).double().cpu().numpy()
    try:
        return float(ConvexHull(pts).volume)
    except (QhullError, ValueError):
        return 0.0


class KeypointDriver:
    """Per-frame driving keypoints for one source and reference, with the retargeting MLPs.

    ``mlps``: ``{'stitching', 'lip', 'eye'}`` -> module, or None when the retargeting weights are
    absent (then stitching, retargeting and lip normalisation are off).
    """

    def __init__(self, mlps: Mapping[str, nn.Module] | None) -> None:
        self.mlps = mlps
        self.source: Keypoints | None = None
        self.x_s: torch.Tensor | None = None
        self.source_ratios: OpenRatios | None = None
        self.reference: Keypoints | None = None
        self._anchor: tuple[tuple, torch.Tensor, float] | None = None
        self._lip_normal: tuple[torch.Tensor | None] | None = None
        self._warned = False

    @torch.inference_mode()
    def set_source(self, source: Keypoints, ratios: OpenRatios | None) -> None:
        self.source, self.x_s, self.source_ratios = source, source.transformed(), ratios
        self._anchor = None
        self._lip_normal = None

    def set_reference(self, reference: Keypoints | None) -> None:
        self.reference = reference
        self._anchor = None

    # ------------------------------------------------------------------ parts
    def stitch(self, x: torch.Tensor) -> torch.Tensor:
        return apply_stitching(self.mlps["stitching"], self.x_s, x)

    def eye_offsets(self, target: float) -> torch.Tensor:
        r = self.source_ratios
        ratio = torch.tensor([[r.eye_left, r.eye_right, target]], dtype=torch.float32, device=self.x_s.device)
        return retarget_eye(self.mlps["eye"], self.x_s, ratio)

    def lip_offsets(self, target: float) -> torch.Tensor:
        ratio = torch.tensor([[self.source_ratios.lip, target]], dtype=torch.float32, device=self.x_s.device)
        return retarget_lip(self.mlps["lip"], self.x_s, ratio)

    def lip_normalisation(self) -> torch.Tensor | None:
        """Offsets closing an open source mouth (None when it is closed or cannot be measured)."""
        if self._lip_normal is None:
            offsets = None
            if self.mlps is not None and self.source_ratios is not None \
                    and self.source_ratios.lip >= LIP_NORMALIZE_THRESHOLD:
                offsets = self.lip_offsets(0.0)
            self._lip_normal = (offsets,)
        return self._lip_normal[0]

    def anchor(self, settings: DriveSettings, keep: Sequence[int]) -> tuple[torch.Tensor, float]:
        """The reference frame's own keypoints and the hull-volume multiplier (expression-friendly)."""
        key = (settings.relative, settings.region, tuple(keep))
        if self._anchor is None or self._anchor[0] != key:
            x_r = compose(self.source, self.reference, self.reference, settings, keep)
            v_s, v_r = hull_volume(self.x_s), hull_volume(x_r)
            m = math.sqrt(v_s) / math.sqrt(v_r) if v_s > 0 and v_r > 0 else 1.0
            self._anchor = (key, x_r, m)
        return self._anchor[1], self._anchor[2]

    def targets(self, settings: DriveSettings, driving_ratios: OpenRatios | None) -> tuple[float | None, float | None]:
        """(eye target, lip target) for this frame; None where the driver's motion decides."""
        if self.mlps is None or self.source_ratios is None:
            if (settings.eye_open >= 0 or settings.mouth_open >= 0 or settings.retargeting) and not self._warned:
                log.warning("eye/mouth retargeting needs the retargeting weights and the source's landmarks; off")
                self._warned = True
            return None, None
        follow = driving_ratios if settings.retargeting else None
        eye = settings.eye_open if settings.eye_open >= 0 else (follow.eyes if follow is not None else None)
        lip = settings.mouth_open if settings.mouth_open >= 0 else (follow.lip if follow is not None else None)
        return eye, lip

    # ------------------------------------------------------------------ one frame
    @torch.inference_mode()
    def __call__(self, driving: Keypoints, settings: DriveSettings,
                 driving_ratios: OpenRatios | None = None) -> torch.Tensor:
        if self.source is None:
            raise RuntimeError("no source keypoints")
        eye, lip = self.targets(settings, driving_ratios)
        keep = (EYE_ROWS if eye is not None else ()) + (LIP_ROWS if lip is not None else ())
        x = compose(self.source, driving, self.reference, settings, keep)
        if settings.expression_friendly and self.reference is not None:
            x_r, m = self.anchor(settings, keep)
            x = (x - x_r) * m + self.x_s
        stitching = settings.stitching and self.mlps is not None
        lip_normal = self.lip_normalisation() if settings.normalize_lip and settings.relative and lip is None else None
        if eye is None and lip is None:
            if stitching:
                x = self.stitch(x)
            if lip_normal is not None:
                x = x + lip_normal
        else:
            if eye is not None:
                x = x + self.eye_offsets(eye)
            if lip is not None:
                x = x + self.lip_offsets(lip)
            elif lip_normal is not None:
                x = x + lip_normal
            if stitching:
                x = self.stitch(x)
        return self.x_s + (x - self.x_s) * settings.multiplier
