"""What the landmark engine sees beyond the face: the person's layers and the driving crop's
body and background motion.

- ``Segmenter``: mediapipe selfie segmentation, kept between images (person masks of the
  source and of the reference driving crop).
- ``person_layers``: the source's person alpha and what lies behind the person (the person
  inpainted), so the person can move over a background that moves on its own.
- ``DrivingMotion``: DIS optical flow (a small grey copy of the crops) between the reference
  driving crop and the current one, fitted with two similarities: the body below the chin
  (neck, shoulders) and the background (what the camera or the moving crop does). The
  background fit is weighted by image texture (flow on a flat wall means nothing), made
  robust by dropping the worst residuals, and shrunk towards the identity by a dead zone so
  that flow noise does not make a still background shimmer.
"""

from __future__ import annotations

import cv2
import numpy as np

from avatarify_app.engines.landmarks import groups as lg
from avatarify_app.engines.landmarks import motion as lm


class Segmenter:
    """mediapipe selfie segmentation (person probability per pixel, HxW float32 in [0, 1])."""

    def __init__(self) -> None:
        import mediapipe as mp

        self._seg = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)

    def mask(self, image: np.ndarray) -> np.ndarray:
        result = self._seg.process(image).segmentation_mask
        if result is None:
            return np.zeros(image.shape[:2], np.float32)
        return np.ascontiguousarray(result, dtype=np.float32)

    def close(self) -> None:
        self._seg.close()


def person_alpha(mask: np.ndarray, landmarks: np.ndarray, grow: float = 0.0) -> np.ndarray:
    """Hardened segmentation united with the (dilated) face oval, grown by ``grow`` px and
    given a narrow soft edge. HxW float32 in [0, 1]."""
    h, w = mask.shape
    alpha = np.clip((mask - 0.5) * 4.0 + 0.5, 0.0, 1.0)  # harden: a narrow soft edge
    oval = np.zeros((h, w), np.float32)
    cv2.fillPoly(oval, [np.round(landmarks[list(lg.FACE_OVAL_RING)]).astype(np.int32)], 1.0)
    k = max(3, int(0.06 * w) | 1)
    oval = cv2.dilate(oval, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    alpha = np.maximum(alpha, oval)
    g = round(grow)
    if g > 0:
        alpha = cv2.dilate(alpha, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * g + 1, 2 * g + 1)))
    return cv2.GaussianBlur(alpha, (3, 3), 0)


def person_layers(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """What lies behind the person of a source crop: the image with the person inpainted (on a
    half-size copy: it only shows where the person moved away) under ``alpha``, the image
    elsewhere, so that composing the unmoved person over it gives the image back."""
    h, w = image.shape[:2]
    small = cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    hole = cv2.resize((alpha > 0.02).astype(np.uint8), (w // 2, h // 2), interpolation=cv2.INTER_NEAREST)
    hole = cv2.dilate(hole, np.ones((5, 5), np.uint8))
    filled = cv2.inpaint(small, hole, 5, cv2.INPAINT_TELEA)
    filled = cv2.resize(filled, (w, h), interpolation=cv2.INTER_LINEAR)
    keep = (1.0 - cv2.resize(hole.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR))[..., None]
    plate = image * keep + filled * (1.0 - keep)
    a = alpha[..., None]
    behind = np.clip(image * (1.0 - a) + plate * a, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(behind)


def extend(image: np.ndarray, margin: int, fill: str = "soft") -> np.ndarray:
    """``image`` with ``margin`` px more on every side: what a warp finds past the crop's edge.

    "replicate" repeats the edge pixels (streaks along the motion), "reflect" mirrors the
    image (sharp mirrored features), "soft" mirrors it and fades the mirror image into a
    blurred copy of itself with the distance from the edge (no streaks, no sharp mirror),
    "smear" fades the mirror image into a blurred copy of the repeated edge instead: what
    touches the edge continues past it in its own colours, blurred along the edge (no
    mirrored feature far out: no second copy of the hair, no reflected helmet ring smeared
    into a grey band; the mirror's texture right at the edge: no streaks)."""
    if margin <= 0:
        return np.ascontiguousarray(image)
    mode = cv2.BORDER_REPLICATE if fill == "replicate" else cv2.BORDER_REFLECT_101
    out = cv2.copyMakeBorder(image, margin, margin, margin, margin, mode)
    if fill not in ("soft", "smear"):
        return out
    h, w = image.shape[:2]
    sigma = margin / 3.0
    far = out if fill == "soft" else cv2.copyMakeBorder(image, margin, margin, margin, margin, cv2.BORDER_REPLICATE)
    blurred = cv2.GaussianBlur(far, (0, 0), sigma)
    ys = np.arange(h + 2 * margin, dtype=np.float32)
    xs = np.arange(w + 2 * margin, dtype=np.float32)
    dy = np.maximum(margin - ys, ys - (h - 1 + margin)).clip(0)
    dx = np.maximum(margin - xs, xs - (w - 1 + margin)).clip(0)
    t = np.clip(np.hypot(dy[:, None], dx[None, :]) / (0.25 * margin), 0.0, 1.0)
    t = t[..., None] if out.ndim == 3 else t
    mixed = out.astype(np.float32) * (1.0 - t) + blurred.astype(np.float32) * t
    return np.ascontiguousarray(mixed.round().astype(image.dtype) if image.dtype == np.uint8 else mixed.astype(image.dtype))


def continuation(size: int, margin: int, centre: np.ndarray, down: np.ndarray, start: float,
                 ramp: float, fade: float) -> np.ndarray:
    """How far the person layer reaches past the crop's edge, per pixel of the crop extended by
    ``margin`` ((size + 2 margin)^2 float32, 1 inside the crop).

    Past an edge point that lies more than ``start`` px below ``centre`` along ``down`` (the
    body: neck, shoulders, a cut-off suit) the person continues (1); past the rest (the top of
    the head, hair at the sides) it ends within ``fade`` px, so that what lies behind the
    person shows there instead of a mirrored or repeated copy of the hair. ``ramp``: the
    width (px along ``down``) of the change between the two."""
    n = size + 2 * margin
    c = np.arange(n, dtype=np.float32) - margin
    q = np.clip(c, 0.0, size - 1.0)  # nearest crop coordinate
    d = np.hypot((c - q)[:, None], (c - q)[None, :])  # distance past the edge (rows y, cols x)
    along = (q[None, :] - centre[0]) * down[0] + (q[:, None] - centre[1]) * down[1]
    body = np.clip((along - start) / max(ramp, 1e-6) + 0.5, 0.0, 1.0)
    return (body + (1.0 - body) * np.exp(-d / max(fade, 1e-6))).astype(np.float32)


def soften(sim: lm.Similarity, centre: np.ndarray, deadzone: float, radius: float) -> lm.Similarity | None:
    """``sim`` shrunk towards the identity by a dead zone: the shift of ``centre`` loses
    ``deadzone`` px, rotation and log-scale lose what moves a point ``radius`` px away by as
    much. None when nothing is left (the identity)."""
    shift = sim.apply(centre[None])[0] - centre
    angle = float(np.arctan2(sim.A[1, 0], sim.A[0, 0]))
    log_s = float(np.log(max(sim.scale, 1e-9)))

    def shrink(v: float, dz: float) -> float:
        return float(np.sign(v) * max(abs(v) - dz, 0.0))

    n = float(np.hypot(*shift))
    shift = shift * (max(n - deadzone, 0.0) / n) if n > 1e-12 else shift * 0.0
    angle = shrink(angle, deadzone / radius)
    log_s = shrink(log_s, deadzone / radius)
    if not shift.any() and angle == 0.0 and log_s == 0.0:
        return None
    c, s = np.cos(angle), np.sin(angle)
    A = np.exp(log_s) * np.array([[c, -s], [s, c]])
    return lm.Similarity(A=A, b=centre + shift - A @ centre)


class DrivingMotion:
    """Body and background similarities (crop px) of the driving crops against a reference.

    Dense DIS optical flow from the reference to each driving crop (grey copies of ``res`` px)
    is warm-started with the previous frame's flow, so that large motion away from the
    reference builds up frame by frame instead of being searched for from scratch. It is
    sampled below the chin (the body) and, when the reference's person mask is known, away
    from the person where the reference has texture (the background)."""

    def __init__(self, size: int, res: int = 64, deadzone: float = 0.5,
                 preset: int = cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST) -> None:
        self.size = size
        self.res = res
        self.deadzone = deadzone
        self._dis = cv2.DISOpticalFlow_create(preset)
        self._ref: np.ndarray | None = None
        self._flow: np.ndarray | None = None  # the last flow (the next frame's first guess)
        self._body: np.ndarray | None = None  # Nx2 flow-grid points below the chin
        self._bg: np.ndarray | None = None  # Nx2 flow-grid points of the background ...
        self._bg_w: np.ndarray | None = None  # ... and their weights (texture)

    def _small(self, image: np.ndarray) -> np.ndarray:
        r = self.res
        return cv2.cvtColor(cv2.resize(image, (r, r), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)

    def set_reference(self, image: np.ndarray, landmarks: np.ndarray, face_size: float,
                      person: np.ndarray | None, body: bool = True) -> None:
        """``face_size`` in crop px; ``person``: the reference's person mask (crop size) or None
        (then no background motion); ``body`` False: no body motion."""
        r, k = self.res, self.res / self.size
        self._ref = g = self._small(image)
        self._flow = self._body = self._bg = self._bg_w = None
        if body:
            chin = landmarks[152] * k
            cx = landmarks.mean(0)[0] * k
            yy, xx = np.mgrid[0:r:2, 0:r:2].astype(np.float32)
            sel = (yy > chin[1] + 0.1 * face_size * k) & (np.abs(xx - cx) < 1.3 * face_size * k) & (yy < r - 2)
            if sel.sum() >= 12:
                self._body = np.stack([xx[sel], yy[sel]], axis=1)
        if person is None:
            return
        # Background: well away from the person (flow there mixes both motions), not on the
        # outermost cells, where the reference has texture (flow on a flat wall means nothing).
        p = (cv2.resize(person, (r, r), interpolation=cv2.INTER_AREA) > 0.1).astype(np.uint8)
        d = max(3, int(r / 16) | 1)
        free = cv2.dilate(p, np.ones((d, d), np.uint8)) == 0
        gf = g.astype(np.float32)
        grad = np.hypot(cv2.Sobel(gf, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(gf, cv2.CV_32F, 0, 1, ksize=3))
        grad = cv2.GaussianBlur(grad, (5, 5), 0)
        yy, xx = np.mgrid[0:r, 0:r]
        sel = free & (yy > 0) & (xx > 0) & (yy < r - 1) & (xx < r - 1) & (grad > 4.0)
        sel &= (yy + xx) % 2 == 0  # every other cell (a checkerboard) is plenty
        if sel.sum() >= 12:
            self._bg = np.stack([xx[sel], yy[sel]], axis=1).astype(np.float32)
            self._bg_w = np.sqrt(grad[sel])  # texture counts, but a few strong edges must not own the fit

    def motion(self, image: np.ndarray) -> tuple[lm.Similarity | None, lm.Similarity | None]:
        """(body, background) similarities reference -> ``image`` in crop px; None where
        unknown or implausible (a scene cut, a hand in front); background None also when
        it stays inside the dead zone."""
        if self._ref is None or (self._body is None and self._bg is None):
            return None, None
        init = None if self._flow is None else self._flow.copy()
        self._flow = flow = self._dis.calc(self._ref, self._small(image), init)
        k = self.size / self.res
        body = None if self._body is None else self._fit(flow, self._body, None, k)
        bg = None if self._bg is None else self._fit(flow, self._bg, self._bg_w, k)
        if bg is not None:
            bg = soften(bg, np.full(2, (self.size - 1) / 2.0), self.deadzone, self.size / 2.0)
        return body, bg

    def _fit(self, flow: np.ndarray, pts: np.ndarray, w: np.ndarray | None, k: float) -> lm.Similarity | None:
        """Robust similarity of the flow at ``pts`` (the worst residuals dropped), in crop px;
        None if implausible."""
        ix = pts.astype(np.int32)
        d = flow[ix[:, 1], ix[:, 0]]
        a = (pts + 0.5) * k - 0.5
        b = a + d * k
        sim = lm.fit_similarity(a, b, w)
        res = np.linalg.norm(sim.apply(a) - b, axis=1)
        keep = res <= 2.5 * float(np.median(res)) + 0.5
        if keep.sum() >= 6:
            sim = lm.fit_similarity(a[keep], b[keep], None if w is None else w[keep])
        angle = abs(float(np.degrees(np.arctan2(sim.A[1, 0], sim.A[0, 0]))))
        shift = float(np.linalg.norm(d.mean(0))) * k
        if not (0.8 < sim.scale < 1.25 and angle < 20.0 and shift < 0.25 * self.size):
            return None
        return sim
