"""Landmark engine: first-order motion from face-mesh landmarks, no neural generator.

The FOMM idea (Siarohin et al. 2019) with keypoints that need no training:

- keypoints: centroids of groups of mesh landmarks (lips, lids, brows, face-oval segments,
  clusters of the rest); Jacobians: least-squares affine fits between the reference
  driving group and the current one (``motion.fit_group_jacobians``);
- relative transfer (FOMM Sec. 3, the demo's ``relative`` rule): kp_src + A (kp_drv - kp_ref)
  and A J_rel A^-1, where A is the linear part of the similarity that aligns the driving
  reference face to the source face (``adapt_scale`` keeps its scale, else only its rotation);
- a *head* keypoint with a wide Gaussian driven by the similarity head motion, so hair,
  ears and neck follow the face, and a *background* keypoint whose weight rises at the crop
  border where the source shows background (not where the person reaches the border: the
  body's motion runs through the edge there, nothing is pinned and smeared);
- mouth and eye *openings*: when the output opens wider than the source, the opening's
  polygon maps onto the source opening (squeezed; a closed mouth maps onto its lip seam)
  and a mouth's new interior is darkened: no tears, no folded lips;
- *blinks*: lids a few px apart are below the coarse grid's reach, so when a driving eye
  closes (its height/width against the reference's) the source's upper lid slides down over
  its eye at full resolution before the warp (``lids``); an open eye is untouched;
- a *body* keypoint below the face (neck, shoulders) driven by the driving body's own
  similarity motion, else by a damped copy of the head motion; the *background* keypoint by
  the driving background's similarity motion (what a moving camera or the tracker's moving
  crop does; the identity for a still one): both from DIS optical flow between the
  reference and current crops (64 px; ``scene.DrivingMotion``);
- masks: the normalised Gaussian heatmaps; one dense backward flow, computed on a coarse
  grid, upsampled and applied with ``cv2.remap``;
- layers: the person (mediapipe selfie segmentation of the source, united with the face
  oval, grown by its outline) is warped by that flow and composed over what lies behind it
  (the source with the person inpainted), which moves only with the background keypoint;
- past the crop's edge the person continues only where the body runs through the edge (below
  the face): a mirror image right at the edge fading into a blur of the repeated edge pixels
  (``scene.extend``: no mirrored helmet ring smeared into a grey band); past the top of the head and hair at the sides
  the person ends within a few px (``scene.continuation``) and what lies behind it
  shows, extended by a mirror image fading into a blur: no second copy of the hair.

Everything that depends on the source alone is cached in ``set_source``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import cv2
import numpy as np

from avatarify_app.config import EngineConfig, MotionOptions
from avatarify_app.engines.landmarks import groups as lg
from avatarify_app.engines.landmarks import lids as ll
from avatarify_app.engines.landmarks import motion as lm
from avatarify_app.engines.landmarks import scene as ls
from avatarify_app.engines.landmarks.openings import darken, find_openings
from avatarify_app.engines.landmarks.state import FrameMotion, ReferenceState, SourceState
from avatarify_app.errors import BadImageError, NoFaceError
from avatarify_app.frames import check_frame
from avatarify_app.tracking.mediapipe_backend import FaceMesh

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LandmarkParams:
    """Tuning of the landmark engine (crop px are for a 256 crop and scale with ``size``)."""

    flow_res: int = 64  # side of the grid the flow is computed on
    n_clusters: int = 16  # clusters of the landmarks no hand-made group uses
    sigma_scale: float = 1.6  # keypoint Gaussian sigma = sigma_scale * group spread ...
    sigma_min: float = 7.0  # ... but at least this (px)
    head_sigma: float = 0.9  # head Gaussian sigma as a multiple of the face size
    head_amp: float = 0.3  # head weight relative to a face keypoint
    body_offset: float = 1.1  # body keypoint: this many face sizes below the face centre ...
    body_sigma: float = 1.0  # ... with this sigma (face sizes) ...
    body_amp: float = 0.3  # ... and weight ...
    body_follow: float = 0.5  # ... follows this fraction of the head motion (neck, shoulders) ...
    body_flow: bool = True  # ... or, when the reference image is known, the driving body's own motion
    body_flow_res: int = 64  # (DIS optical flow between the reference and current crops at this size)
    bg_motion: bool = True  # the background follows the driving background's own motion (camera, moving crop)
    bg_deadzone: float = 1.0  # ... less this much (px): flow noise must not make a still background shimmer
    border_amp: float = 30.0  # background weight at the border (where the source shows no person) ...
    border_tau: float = 1.5  # ... decaying with this length (px) into the crop
    edge_fill: str = "smear"  # the person past the crop's edge: "smear" (mirror fading into the blurred
    # repeated edge), "soft" (mirror fading into blur), "reflect" or "replicate" ...
    plate_fill: str = "soft"  # ... what lies behind the person (background: a mirror of it is background) ...
    edge_margin: float = 24.0  # ... that far (px); beyond it the extended edge repeats
    edge_body: float = 0.6  # the person continues past the edge below this many face sizes under the face centre ...
    edge_fade: float = 3.0  # ... and elsewhere (the top of the head, hair) ends within this (px) past the edge
    person_grow: float = 2.0  # the person layer reaches this far (px) past the segmentation (its own outline)
    region_amp: float = 40.0  # weight of an opening's interior map
    mouth_darken: float = 0.55  # how dark a newly opened mouth interior gets
    blink: bool = True  # the source's upper lids close over its eyes when the driving eyes close ...
    blink_open: float = 0.8  # ... starting when an eye's height/width falls below this fraction of the reference's ...
    blink_closed: float = 0.6  # ... fully closed at this fraction ...
    blink_lift: float = 0.5  # ... the lid's skin moving from this many eye widths above the lid
    ridge: float = 0.15  # Jacobian fit shrinkage to the identity
    max_expression: float = 0.25  # keypoint motion beyond the head's, in face sizes, at most
    layered: bool = True  # person (segmentation) moves over a still, inpainted background plate


_EYES = ((lg.RIGHT_EYE_CORNERS, lg.RIGHT_EYE_PAIRS), (lg.LEFT_EYE_CORNERS, lg.LEFT_EYE_PAIRS))
_IDENTITY = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 0.0])


class LandmarkEngine:
    """Animate a source crop with the landmark motion of driving crops (see module doc)."""

    name = "landmarks"

    def __init__(self, size: int = 256, options: MotionOptions | None = None,
                 params: LandmarkParams | None = None) -> None:
        self.size = int(size)
        self.device = "cpu (numpy/OpenCV)"
        self.options = options or MotionOptions()
        self.params = params or LandmarkParams()
        self._finders: dict[bool, FaceMesh] = {}
        self._segmenter: ls.Segmenter | None = None
        self._motion: ls.DrivingMotion | None = None
        self._src: SourceState | None = None
        self._ref: ReferenceState | None = None
        self._debug: dict[str, np.ndarray] = {}
        r = self.params.flow_res
        # Grid of the coarse flow at pixel centres, in crop pixels (cv2.resize convention).
        self._xs = ((np.arange(r) + 0.5) * (self.size / r) - 0.5).astype(np.float32)
        self._ys = self._xs.copy()
        self._grid_c = np.stack(np.meshgrid(self._xs, self._ys), axis=-1)
        d = np.minimum.outer(np.minimum(self._ys + 0.5, self.size - 0.5 - self._ys),
                             np.minimum(self._xs + 0.5, self.size - 0.5 - self._xs))
        tau = self.params.border_tau * self.size / 256.0
        self._border_w = (self.params.border_amp * np.exp(-d / tau)).astype(np.float32)
        full = np.arange(self.size, dtype=np.float32)
        # Sources are extended by a margin (what the warp finds past the edge): grid offset by it.
        self._margin = max(0, round(self.params.edge_margin * self.size / 256.0))
        self._gx, self._gy = np.meshgrid(full + self._margin, full + self._margin)

    @classmethod
    def from_config(cls, config: EngineConfig, options: MotionOptions | None = None) -> LandmarkEngine:
        if config.device not in ("auto", "cpu"):
            log.info("landmark engine runs on the CPU; device %s ignored", config.device)
        return cls(options=options)

    # --- landmarks -------------------------------------------------------------------------

    def _landmarks(self, image: np.ndarray, landmarks: np.ndarray | None, static: bool,
                   what: str) -> np.ndarray:
        if landmarks is not None:
            pts = np.asarray(landmarks, dtype=np.float32)
            if pts.ndim != 2 or pts.shape[0] < lg.N_LANDMARKS or pts.shape[1] != 2:
                raise ValueError(f"{what} landmarks must be (468, 2) mediapipe mesh points, got {pts.shape}")
            if not np.isfinite(pts).all():
                raise ValueError(f"{what} landmarks contain NaN or inf")
            return pts[: lg.N_LANDMARKS]
        finder = self._finders.get(static)
        if finder is None:
            finder = self._finders[static] = FaceMesh(static)
        pts = finder.landmarks(image)
        if pts is None:
            raise NoFaceError(f"No face found in the {what} image.",
                              "Use a photo with one clearly visible, roughly frontal face."
                              if what == "source" else
                              "Face the camera in good light, not too far away.")
        return pts

    def _check(self, image: np.ndarray, what: str) -> np.ndarray:
        try:
            check_frame(image, what)
        except ValueError as err:
            raise BadImageError(str(err), "Pass uint8 RGB HxWx3 crops.") from err
        if image.shape[:2] != (self.size, self.size):
            raise BadImageError(f"The {what} crop is {image.shape[1]}x{image.shape[0]}; "
                                f"the landmark engine takes {self.size}x{self.size} crops.",
                                "Align the face first (avatarify_app.tracking.align_portrait).")
        return image

    # --- protocol --------------------------------------------------------------------------

    def set_source(self, image: np.ndarray, landmarks: np.ndarray | None = None) -> None:
        image = self._check(image, "source")
        pts = self._landmarks(image, landmarks, True, "source").astype(np.float64)
        p = self.params
        k256 = self.size / 256.0
        groups = lg.build_groups(pts, p.n_clusters)
        names = list(groups)
        idx, mask = lm.group_arrays([groups[n] for n in names])
        oval = pts[list(lg.FACE_OVAL_RING)]
        face_size = float(np.sqrt(cv2.contourArea(oval.astype(np.float32))))
        # "Down" of the face: perpendicular to the line between the outer eye corners.
        eyes = pts[lg.LEFT_EYE_CORNERS[0]] - pts[lg.RIGHT_EYE_CORNERS[0]]
        down = np.array([-eyes[1], eyes[0]]) / max(float(np.hypot(*eyes)), 1e-6)
        alpha = ls.person_alpha(self._segment(image), pts, p.person_grow * k256)
        plate = ls.person_layers(image, alpha) if p.layered else None
        # The border stays with the background; where the person reaches the border (shoulders,
        # a cut-off suit) the body's motion runs through it instead (no pinned, smeared edge).
        r = p.flow_res
        person_c = cv2.resize(alpha, (r, r), interpolation=cv2.INTER_AREA)
        extent = (self.size + 2 * self._margin,) * 2
        self._src = SourceState(
            landmarks=pts,
            names=names,
            idx=idx,
            mask=mask,
            kp=lm.group_centroids(pts, idx, mask),
            sigma=np.maximum(p.sigma_scale * lm.group_spread(pts, idx, mask), p.sigma_min * k256),
            centre=pts.mean(0),
            face_size=face_size,
            body=pts.mean(0) + down * (p.body_offset * face_size),
            mouth=lm.opening_axis(pts, lg.MOUTH_INNER_CORNERS, lg.MOUTH_INNER_PAIRS),
            reye=lm.opening_axis(pts, lg.RIGHT_EYE_CORNERS, lg.RIGHT_EYE_PAIRS),
            leye=lm.opening_axis(pts, lg.LEFT_EYE_CORNERS, lg.LEFT_EYE_PAIRS),
            eyes=[ll.openness(pts, *eye) for eye in _EYES],
            lids=[ll.prepare(pts + self._margin, ring, corners, extent, p.blink_lift) if p.blink else None
                  for ring, corners in ((lg.RIGHT_EYE_RING, lg.RIGHT_EYE_CORNERS),
                                        (lg.LEFT_EYE_RING, lg.LEFT_EYE_CORNERS))],
            image_x=ls.extend(image, self._margin, p.edge_fill),
            border_w=self._border_w * (1.0 - person_c) + 1e-6,
            alpha=ls.extend(alpha, self._margin, "replicate") * ls.continuation(
                self.size, self._margin, pts.mean(0), down, p.edge_body * face_size, 0.3 * face_size,
                p.edge_fade * k256) if p.layered else None,
            plate=None if plate is None else ls.extend(plate, self._margin, p.plate_fill),
            plate_in=plate,
        )
        if self._ref is not None:
            self._align_reference()

    def set_reference(self, image: np.ndarray | None, landmarks: np.ndarray | None = None) -> None:
        if image is None and landmarks is None:
            self._ref = None
            return
        if image is not None:
            image = self._check(image, "reference")
        pts = self._landmarks(image, landmarks, True, "reference").astype(np.float64)
        self._ref = ReferenceState(pts, image)
        if self._src is not None:
            self._align_reference()

    def _align_reference(self) -> None:
        """Cache what depends on the (source, reference) pair: the aligning similarity."""
        src, ref, p = self._src, self._ref, self.params
        assert src is not None and ref is not None
        ref.to_source = lm.fit_similarity(ref.landmarks, src.landmarks)
        ref.kp = lm.group_centroids(ref.landmarks, src.idx, src.mask)
        ref.eyes = [ll.openness(ref.landmarks, *eye) for eye in _EYES]
        # Body and background motion of the driving crops (optical flow against the reference).
        ref.motion = None
        if ref.image is not None and (p.body_flow or p.bg_motion):
            if self._motion is None:
                self._motion = ls.DrivingMotion(self.size, p.body_flow_res, p.bg_deadzone * self.size / 256.0)
            fs = src.face_size / max(ref.to_source.scale, 1e-6)
            person = self._segment(ref.image) if p.bg_motion else None
            self._motion.set_reference(ref.image, ref.landmarks, fs, person, body=p.body_flow)
            ref.motion = self._motion

    def has_reference(self) -> bool:
        return self._ref is not None

    def set_options(self, options: MotionOptions) -> None:
        self.options = options

    def predict(self, image: np.ndarray, landmarks: np.ndarray | None = None) -> np.ndarray:
        if self._src is None:
            raise RuntimeError("set_source() must be called before predict()")
        image = self._check(image, "driving")
        drv = self._landmarks(image, landmarks, False, "driving").astype(np.float64)
        if self._ref is None:
            self._ref = ReferenceState(drv.copy(), image.copy())
            self._align_reference()
        return self._animate(drv, image)

    def debug_info(self) -> dict[str, np.ndarray]:
        """kp_source / kp_driving / kp_output (Kx2 crop px; the last row is the head keypoint),
        flow (HxWx2 backward offsets in px) and masks (MxRxR: the normalised heatmaps on the
        coarse grid: keypoints, head, body, open mouth/eyes when shown, background last)."""
        out = {k: v for k, v in self._debug.items() if k != "weights"}
        if "weights" in self._debug:
            w = self._debug["weights"]
            out["masks"] = (w / w.sum(0, keepdims=True)).astype(np.float32)
        return out

    def close(self) -> None:
        for finder in self._finders.values():
            finder.close()
        self._finders.clear()
        if self._segmenter is not None:
            self._segmenter.close()
            self._segmenter = None

    # --- the motion ------------------------------------------------------------------------

    def _segment(self, image: np.ndarray) -> np.ndarray:
        if self._segmenter is None:
            self._segmenter = ls.Segmenter()
        return self._segmenter.mask(image)

    def _animate(self, drv: np.ndarray, image: np.ndarray) -> np.ndarray:
        """One frame: keypoint motion, bounded expression, body, openings, background, flow, warp."""
        src, ref, p = self._src, self._ref, self.params
        assert src is not None and ref is not None
        motion = self._bound_expression(self._keypoint_motion(drv))
        kps_src = np.vstack([src.kp, src.centre[None]])
        kps_new = np.vstack([motion.kp_new, motion.head_new[None]])
        affines = lm.backward_affines(kps_src, kps_new, np.concatenate([motion.J_new, motion.head_J[None]]))
        body, bg = ref.motion.motion(image) if ref.motion is not None else (None, None)
        body_new, body_aff = self._body_affine(body, affines[-1])
        fs = src.face_size
        weights = lm.gaussian_weights(
            np.vstack([kps_new, body_new[None]]),
            np.concatenate([src.sigma, [p.head_sigma * fs, p.body_sigma * fs]]),
            np.concatenate([np.ones(len(motion.kp_new)), [p.head_amp, p.body_amp]]), self._xs, self._ys)
        openings = find_openings({k: src.axis(k) for k in ("mouth", "reye", "leye")}, motion.target,
                                 self.size, p.flow_res, p.region_amp, p.mouth_darken)
        bg_aff = self._background_affine(bg)
        W = np.concatenate([weights, *(w[None] for w in openings.weights), src.border_w[None]], axis=0)
        affs = np.concatenate([affines, body_aff[None], *(a[None] for a in openings.affines), bg_aff[None]], axis=0)
        flow = self._dense_flow(W, affs)
        out = self._warp(drv, flow, None if bg is None else bg_aff)
        if openings.mouth_poly is not None and openings.mouth_dark > 0.01:
            out = darken(out, openings.mouth_poly, openings.mouth_dark, self.size)
        ref_centre = ref.landmarks.mean(0)[None]
        self._debug = {
            "kp_source": kps_src.astype(np.float32),
            "kp_driving": np.vstack([motion.kp_driving, motion.head.apply(ref_centre)]).astype(np.float32),
            "kp_output": kps_new.astype(np.float32),
            "flow": flow,
            "weights": W,
        }
        return np.ascontiguousarray(out)

    def _keypoint_motion(self, drv: np.ndarray) -> FrameMotion:
        """Where the source keypoints and the head go (relative or absolute transfer)."""
        src, ref, p = self._src, self._ref, self.params
        ref_pts, to_src = ref.landmarks, ref.to_source
        kp_drv = lm.group_centroids(drv, src.idx, src.mask)
        head = lm.fit_similarity(ref_pts, drv)  # rigid-ish head motion ref -> driving
        if self.options.relative:
            A = lm.adapt_linear(to_src, self.options.adapt_scale)
            jac = lm.fit_group_jacobians(ref_pts, drv, src.idx, src.mask, p.ridge)
            kp_new, J_new = lm.relative_transfer(src.kp, ref.kp, kp_drv, jac, A)
            head_new = src.centre + (head.apply(ref_pts.mean(0)[None])[0] - ref_pts.mean(0)) @ A.T
            head_J = A @ head.A @ lm.inv2(A)
            target = src.landmarks + (drv - ref_pts) @ A.T
        else:
            # Absolute: the driving face itself, placed on the source by the aligning similarity.
            target = to_src.apply(drv)
            kp_new = lm.group_centroids(target, src.idx, src.mask)
            J_new = lm.fit_group_jacobians(src.landmarks, target, src.idx, src.mask, p.ridge)
            whole = lm.fit_similarity(src.landmarks, target)
            head_new = whole.apply(src.centre[None])[0]
            head_J = whole.A
        return FrameMotion(kp_drv, head, kp_new, J_new, head_new, head_J, target)

    def _bound_expression(self, motion: FrameMotion) -> FrameMotion:
        """Expression on top of the head motion is bounded (a scene cut or a lost face must not
        tear the picture apart): each keypoint stays within max_expression face sizes of where
        the head motion alone would put it."""
        src = self._src
        rigid = motion.head_new + (src.kp - src.centre) @ motion.head_J.T
        excess = motion.kp_new - rigid
        limit = self.params.max_expression * src.face_size
        norm = np.linalg.norm(excess, axis=1, keepdims=True)
        return replace(motion, kp_new=rigid + excess * np.minimum(1.0, limit / np.maximum(norm, 1e-9)))

    def _body_affine(self, body: lm.Similarity | None, head_aff: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(where the body keypoint goes, its backward affine): the driving body's own motion,
        transferred like a keypoint, else a damped copy of the head's backward map."""
        src, to_src, p = self._src, self._ref.to_source, self.params
        if body is not None:
            A_b = lm.adapt_linear(to_src, self.options.adapt_scale)
            ref_body = np.linalg.solve(to_src.A, src.body - to_src.b)
            body_new, body_J = lm.relative_transfer(src.body[None], ref_body[None], body.apply(ref_body[None]),
                                                    body.A[None], A_b)
            return body_new[0], lm.backward_affines(src.body[None], body_new[0][None], body_J)[0]
        body_aff = (1.0 - p.body_follow) * _IDENTITY + p.body_follow * head_aff
        return np.linalg.solve(body_aff[:4].reshape(2, 2), src.body - body_aff[4:]), body_aff

    def _background_affine(self, bg: lm.Similarity | None) -> np.ndarray:
        """The driving background's motion transferred like a keypoint at the crop centre (a
        similarity commutes with A), else the identity."""
        if bg is None:
            return _IDENTITY.copy()
        to_src = self._ref.to_source
        A_g = lm.adapt_linear(to_src, self.options.adapt_scale)
        c = np.full(2, (self.size - 1) / 2.0)
        ref_c = np.linalg.solve(to_src.A, c - to_src.b)
        c_new = c + (bg.apply(ref_c[None])[0] - ref_c) @ A_g.T
        return lm.backward_affines(c[None], c_new[None], bg.A[None])[0]

    def _dense_flow(self, weights: np.ndarray, affines: np.ndarray) -> np.ndarray:
        """Backward flow (size x size x 2 px) blended from the layers on the coarse grid."""
        coarse = lm.blend_backward(weights, affines, self._xs, self._ys)  # rxrx2 sampling positions
        flow_c = coarse - self._grid_c
        if self.params.flow_res == self.size:
            return flow_c
        return cv2.resize(flow_c, (self.size, self.size), interpolation=cv2.INTER_LINEAR)

    def _warp(self, drv: np.ndarray, flow: np.ndarray, bg_aff: np.ndarray | None) -> np.ndarray:
        """The (blinked) source warped by ``flow``; in layered mode the person over the plate,
        which moves with the background's backward affine ``bg_aff`` (None: it stays)."""
        src = self._src
        map_x = self._gx + flow[..., 0]
        map_y = self._gy + flow[..., 1]
        out = cv2.remap(self._blinked(drv), map_x, map_y, interpolation=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE)
        if src.alpha is None:
            return out
        a = cv2.remap(src.alpha, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if bg_aff is None:
            plate = src.plate_in
        else:
            m = bg_aff[[0, 1, 4, 2, 3, 5]].reshape(2, 3).copy()  # dst -> src (WARP_INVERSE_MAP)
            m[:, 2] += self._margin
            plate = cv2.warpAffine(src.plate, m, (self.size, self.size),
                                   flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
        return cv2.blendLinear(out, plate, a, 1.0 - a)

    def _blinked(self, drv: np.ndarray) -> np.ndarray:
        """The (extended) source image with its upper lids lowered as far as the driving eyes
        closed against the reference (``lids``); the cached image when both are open."""
        src, ref, p = self._src, self._ref, self.params
        assert src is not None and ref is not None
        image = src.image_x
        if not p.blink:
            return image
        # Relative: the driving eye against the reference eye; absolute: against the source's.
        base = ref.eyes if self.options.relative else src.eyes
        for lid, eye, b in zip(src.lids, _EYES, base, strict=True):
            if lid is None:
                continue
            f = ll.fraction(ll.openness(drv, *eye) / max(b, 1e-6), p.blink_open, p.blink_closed)
            if f < 1.0:
                if image is src.image_x:
                    image = image.copy()
                ll.close(image, lid, f)
        return image
