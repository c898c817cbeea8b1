"""Eyelids that close: a blink the coarse flow grid cannot resolve, drawn at full resolution.

The lids of one eye lie a few px apart, too close for the landmark engine's coarse flow
(its Gaussians are wider than the eye is tall): a closed driving eye left the avatar's eye
open. Here the source's upper lid slides down over its eye instead, before the engine's warp.

In the eye's own frame (``s`` along the line between the corners, ``t`` across it, down
positive) the source's upper lid runs at ``t_u(s)``, the lower one at ``t_l(s)``. An eye
open to the fraction ``f`` of the source's opening puts the upper lid's edge at
``t_u' = t_l + f (t_u - t_l)``; the skin between ``t_top = t_u - lift`` and the lid's edge
stretches down onto ``[t_top, t_u']``, the eye below it stays where it is (now partly
covered), and nothing changes above ``t_top``, below the lower lid or past the corners
(where ``t_u = t_l``). A closed eye (``f = 0``) shows the stretched lid down to the lower
lash line; ``f = 1`` is the identity, pixel for pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Lid:
    """One eye's box (extended-image px) with its eye-frame coordinates per pixel."""

    x0: int
    y0: int
    gx: np.ndarray  # HxW absolute sampling positions of the identity (float32)
    gy: np.ndarray
    t: np.ndarray  # HxW across-the-eye coordinate of each pixel (down positive)
    t_u: np.ndarray  # HxW upper lid, lower lid and the top of the moving skin at each pixel's s
    t_l: np.ndarray
    t_top: np.ndarray
    v: np.ndarray  # 2: unit "down" of the eye


def _lid_curve(s_pts: np.ndarray, t_pts: np.ndarray, s: np.ndarray) -> np.ndarray:
    order = np.argsort(s_pts)
    return np.interp(s, s_pts[order], t_pts[order]).astype(np.float32)


def prepare(pts: np.ndarray, ring: tuple[int, ...], corners: tuple[int, int], shape: tuple[int, int],
            lift: float = 0.5) -> Lid | None:
    """The lid geometry of one eye. ``pts``: landmarks in the image's px; ``ring``: the eye
    contour from one corner over the upper lid to the other corner and back along the lower
    lid; ``shape``: the image's (h, w); ``lift``: how far above the lid the skin moves, in eye
    widths. None when the eye is degenerate or off the image."""
    pts = pts.astype(np.float64)
    a, b = pts[corners[0]], pts[corners[1]]
    width = float(np.hypot(*(b - a)))
    if width < 2.0:
        return None
    u = (b - a) / width
    v = np.array([-u[1], u[0]])
    half = list(ring).index(corners[1])
    upper = pts[list(ring[: half + 1])]
    lower = pts[[*ring[half:], ring[0]]]
    if (lower - a).dot(v).mean() < (upper - a).dot(v).mean():
        v = -v  # "down" is from the upper lid to the lower one
    s_up, t_up = (upper - a) @ u, (upper - a) @ v
    s_lo, t_lo = (lower - a) @ u, (lower - a) @ v
    top = float(t_up.min()) - lift * width
    bottom = float(t_lo.max()) + 1.0
    s0, s1 = min(s_up.min(), s_lo.min()) - 1.0, max(s_up.max(), s_lo.max()) + 1.0
    box = np.array([a + s * u + t * v for s in (s0, s1) for t in (top, bottom)])
    h, w = shape
    x0, y0 = (np.floor(box.min(0)) - 2).astype(int)
    x1, y1 = (np.ceil(box.max(0)) + 3).astype(int)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return None
    gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
    s = (gx - a[0]) * u[0] + (gy - a[1]) * u[1]
    t = ((gx - a[0]) * v[0] + (gy - a[1]) * v[1]).astype(np.float32)
    t_u = _lid_curve(s_up, t_up, s)
    t_l = np.maximum(_lid_curve(s_lo, t_lo, s), t_u)
    return Lid(x0=int(x0), y0=int(y0), gx=gx, gy=gy, t=t, t_u=t_u, t_l=t_l,
               t_top=(t_u - lift * width).astype(np.float32), v=v.astype(np.float32))


def close(image: np.ndarray, lid: Lid, fraction: float) -> None:
    """Lower the upper lid in place so that the eye stays open to ``fraction`` (0: closed,
    1: as in the image) of its opening."""
    f = float(np.clip(fraction, 0.0, 1.0))
    if f >= 1.0:
        return
    t, t_u, t_top = lid.t, lid.t_u, lid.t_top
    edge = lid.t_l + f * (t_u - lid.t_l)  # the lid's new edge
    skin = (t >= t_top) & (t < edge)
    t_src = np.where(skin, t_top + (t - t_top) * (t_u - t_top) / np.maximum(edge - t_top, 1e-3), t)
    d = (t_src - t).astype(np.float32)
    map_x = lid.gx + d * lid.v[0]
    map_y = lid.gy + d * lid.v[1]
    h, w = lid.gx.shape
    patch = cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    image[lid.y0: lid.y0 + h, lid.x0: lid.x0 + w] = patch


def openness(pts: np.ndarray, corners: tuple[int, int], pairs: tuple[tuple[int, int], ...]) -> float:
    """An eye's height (mean distance of the lid landmark ``pairs``) over its width (``corners``)."""
    top = pts[[q[0] for q in pairs]]
    bottom = pts[[q[1] for q in pairs]]
    height = float(np.sqrt(((bottom - top) ** 2).sum(1)).mean())
    width = float(np.hypot(*(pts[corners[1]] - pts[corners[0]])))
    return height / max(width, 1e-6)


def fraction(ratio: float, open_at: float = 0.85, closed_at: float = 0.3) -> float:
    """How far the avatar's eye stays open (0..1) for the driving eye's openness ``ratio``
    (its height/width over the reference's): open above ``open_at`` (landmark jitter must
    not make the lids flutter), closed below ``closed_at`` (the mesh never quite meets)."""
    return float(np.clip((ratio - closed_at) / max(open_at - closed_at, 1e-6), 0.0, 1.0))
