"""The LivePortrait authors' face crops, found from our mesh inside our crop, and the paste-back.

The engine gets our tracker's square VoxCeleb-style crop (``tracking.crop``; the face box is
~42% of the side) and its 468 mesh points. The networks were trained on the authors' crops,
which their ``parse_rect_from_landmark`` derives from face landmarks:

- the crop's y axis runs from the centre of the eyes to the centre of the mouth (so a rolled
  head is turned upright), its x axis is perpendicular to it;
- the landmarks' extent in that frame gives the centre and the side (the larger of width and
  height), the side is multiplied by ``scale`` and the centre moved by ``vx``/``vy`` times the
  side along x/y (negative vy moves it up, showing more forehead);
- source images: scale 2.3, vy -0.125, turned upright (their ``crop_image``);
- driving frames: scale 2.2, vy -0.1, with the same centre and side but not turned (their
  ``crop_driving_video``, which also keeps one box for the whole video).

Their source crop comes from insightface's 106 points, which outline the jaw from ear to ear,
the brows, eyes, nose and mouth, with nothing above the brows. The mesh points playing those
roles (``EXTENT``): the lower face oval from 127 to 356 through the chin (152), both brows, the
eye corners and lids, the nose and the mouth; the mesh's forehead points are left out (with them
the box is ~20% larger than the authors' driving crops). The axis: the mean of each eye's corners and
lid middles (33, 133, 159, 145 and 362, 263, 386, 374, like their four points per eye) and the
middle of the mouth corners (61, 291, their lip centre).

Checked on the authors' twelve square driving videos (made with their cropping): the driving
box found this way has 0.96-1.22 times the frames' side (mean 1.08) and its centre lies within
0.05 of the side of the frames' centre.

Pixel coordinates are continuous (pixel i spans [i, i+1], as ``tracking.crop``); OpenCV's
index coordinates are converted where matrices are built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

LEFT_EYE = (33, 133, 159, 145)  # image-left eye: corners, upper and lower lid middles
RIGHT_EYE = (362, 263, 386, 374)
MOUTH_OUTER_CORNERS = (61, 291)
LOWER_OVAL = (127, 234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152,
              377, 400, 378, 379, 365, 397, 288, 361, 323, 454, 356)
BROWS = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46, 300, 293, 334, 296, 336, 285, 295, 282, 283, 276)
NOSE = (1, 2, 4, 5, 6, 98, 327, 168, 197, 195)
MOUTH = (0, 13, 14, 17, 37, 39, 40, 61, 78, 84, 91, 146, 181, 185, 267, 269, 270, 291, 308, 314, 321, 375, 405, 409)
EXTENT = tuple(sorted(set(LOWER_OVAL + BROWS + LEFT_EYE + RIGHT_EYE + NOSE + MOUTH)))

PASTE_FEATHER = 0.04
"""Width of the paste-back mask's ramp, as a fraction of the LivePortrait crop's side."""


@dataclass(frozen=True)
class CropRule:
    """How a crop is framed from landmarks (the authors' crop_cfg)."""

    scale: float
    vx: float
    vy: float
    upright: bool


SOURCE_RULE = CropRule(scale=2.3, vx=0.0, vy=-0.125, upright=True)
DRIVING_RULE = CropRule(scale=2.2, vx=0.0, vy=-0.1, upright=False)


@dataclass(frozen=True)
class Window:
    """A square, possibly turned, window in an image: centre, side and the angle of its x axis
    (radians, clockwise on screen), in continuous pixel coordinates."""

    cx: float
    cy: float
    side: float
    angle: float = 0.0

    def axes(self) -> np.ndarray:
        """2x2: rows are the window's x and y axes in the image."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        return np.array([[c, s], [-s, c]], np.float64)

    def to_window(self, n: int) -> np.ndarray:
        """2x3 affine, image px -> px of the window sampled at n x n (continuous coordinates)."""
        k = n / self.side
        a = self.axes() * k
        return np.hstack([a, (n / 2.0 - a @ np.array([self.cx, self.cy]))[:, None]])

    def from_window(self, n: int) -> np.ndarray:
        """2x3 affine, px of the n x n window -> image px (continuous coordinates)."""
        return invert(self.to_window(n))

    def points_to_image(self, points: np.ndarray, n: int) -> np.ndarray:
        """Nx2 window px (of an n x n sampling) -> image px, float32."""
        m = self.from_window(n)
        p = np.asarray(points, np.float64)
        return (p @ m[:, :2].T + m[:, 2]).astype(np.float32)


def invert(m: np.ndarray) -> np.ndarray:
    full = np.vstack([m, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def to_index(m: np.ndarray) -> np.ndarray:
    """A 2x3 affine between continuous coordinates as one between OpenCV pixel indices."""
    out = m.copy()
    out[:, 2] = m[:, 2] + 0.5 * m[:, :2].sum(axis=1) - 0.5
    return out


def window_for(landmarks: np.ndarray, rule: CropRule) -> Window:
    """The authors' crop for a face whose (468, 2) mesh is ``landmarks`` (image px)."""
    p = np.asarray(landmarks, np.float64)
    if p.ndim != 2 or p.shape[0] < 468:
        raise ValueError(f"expected (468, 2) mesh landmarks, got {p.shape}")
    eyes = 0.5 * (p[list(LEFT_EYE)].mean(axis=0) + p[list(RIGHT_EYE)].mean(axis=0))
    mouth = p[list(MOUTH_OUTER_CORNERS)].mean(axis=0)
    down = mouth - eyes
    length = float(np.hypot(*down))
    uy = down / length if length > 1e-3 else np.array([0.0, 1.0])
    ux = np.array([uy[1], -uy[0]])
    pts = p[list(EXTENT)]
    c0 = pts.mean(axis=0)
    local = (pts - c0) @ np.stack([ux, uy]).T
    lo, hi = local.min(axis=0), local.max(axis=0)
    mid = 0.5 * (lo + hi)
    side = float((hi - lo).max()) * rule.scale
    centre = c0 + ux * mid[0] + uy * mid[1] + ux * (rule.vx * side) + uy * (rule.vy * side)
    angle = math.atan2(ux[1], ux[0]) if rule.upright else 0.0
    return Window(float(centre[0]), float(centre[1]), max(side, 1.0), angle)


def cut(image: np.ndarray, window: Window, n: int) -> np.ndarray:
    """The window as an n x n frame: sampled at 2n (bilinear), then area-averaged to n, as the
    authors crop at 512 and shrink to 256; the image's border is repeated outside it."""
    hi = 2 * n
    m = to_index(window.to_window(hi))
    big = cv2.warpAffine(image, m, (hi, hi), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(cv2.resize(big, (n, n), interpolation=cv2.INTER_AREA))


def feather_mask(n: int, feather: float = PASTE_FEATHER) -> np.ndarray:
    """n x n float32 weights: 1 inside, falling smoothly to 0 over ``feather`` of the side at each edge."""
    u = np.arange(n, dtype=np.float32) + 0.5
    ramp = np.clip(np.minimum(u, n - u) / max(feather * n, 1.0), 0.0, 1.0)
    ramp = ramp * ramp * (3.0 - 2.0 * ramp)
    return np.outer(ramp, ramp).astype(np.float32)


class PasteBack:
    """Puts a LivePortrait output (the source window, l x l) back into the source crop at the
    output size, blended with a feathered mask (the authors' paste-back, in our crop's frame).
    Everything that depends on the source alone is computed once."""

    def __init__(self, background: np.ndarray, crop_side: int, window: Window, lp_side: int,
                 feather: float = PASTE_FEATHER) -> None:
        self.size = int(background.shape[0])
        # output px <- our crop px (scaled by size / crop_side) <- window px
        self._matrix = to_index(window.from_window(lp_side) * (self.size / float(crop_side)))
        self.lp_side = int(lp_side)
        alpha = cv2.warpAffine(feather_mask(lp_side, feather), self._matrix, (self.size, self.size),
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        self.alpha = np.clip(alpha, 0.0, 1.0)[:, :, None].astype(np.float32)
        self.background = np.ascontiguousarray(background)
        self._bg = background.astype(np.float32)

    def __call__(self, lp_image: np.ndarray) -> np.ndarray:
        if lp_image.shape[:2] != (self.lp_side, self.lp_side):
            raise ValueError(f"expected a {self.lp_side}x{self.lp_side} LivePortrait output, got {lp_image.shape}")
        warped = cv2.warpAffine(lp_image, self._matrix, (self.size, self.size), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)
        out = self._bg + (warped.astype(np.float32) - self._bg) * self.alpha
        return np.ascontiguousarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))
