"""Landmark engine: first-order motion from face-mesh landmarks, no neural generator.

The FOMM idea (Siarohin et al. 2019) with keypoints that need no training:

- keypoints: centroids of groups of mesh landmarks (lips, lids, brows, face-oval segments,
  clusters of the rest); Jacobians: least-squares affine fits between the reference
  driving group and the current one (``landmark_motion.fit_group_jacobians``);
- relative transfer (FOMM Sec. 3, the demo's ``relative`` rule): kp_src + A (kp_drv - kp_ref)
  and A J_rel A^-1, where A is the linear part of the similarity that aligns the driving
  reference face to the source face (``adapt_scale`` keeps its scale, else only its rotation);
- a *head* keypoint with a wide Gaussian driven by the similarity head motion, so hair,
  ears and neck follow the face, and a *background* keypoint (identity) whose weight rises
  at the crop border, so the border stays put;
- mouth and eye *openings*: when the output opens wider than the source, the opening's
  polygon maps onto the source opening (squeezed; a closed mouth maps onto its lip seam)
  and a mouth's new interior is darkened: no tears, no folded lips;
- a *body* keypoint below the face (neck, shoulders) driven by the driving body's own
  similarity motion (DIS optical flow between the reference and current crops, 64 px,
  below the chin), else by a damped copy of the head motion;
- masks: the normalised Gaussian heatmaps; one dense backward flow, computed on a coarse
  grid, upsampled and applied with ``cv2.remap``;
- layers: the person (mediapipe selfie segmentation of the source, united with the face
  oval) is warped by that flow and composed over what lies behind it (the source with the
  person inpainted), so the background stays still while head and shoulders move.

Everything that depends on the source alone is cached in ``set_source``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from avatarify_app.config import EngineConfig, MotionOptions
from avatarify_app.engines import landmark_groups as lg
from avatarify_app.engines import landmark_motion as lm
from avatarify_app.errors import BadImageError, NoFaceError
from avatarify_app.frames import check_frame

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
    border_amp: float = 30.0  # background weight at the border ...
    border_tau: float = 1.5  # ... decaying with this length (px) into the crop
    region_amp: float = 40.0  # weight of an opening's interior map
    mouth_darken: float = 0.55  # how dark a newly opened mouth interior gets
    ridge: float = 0.15  # Jacobian fit shrinkage to the identity
    max_expression: float = 0.25  # keypoint motion beyond the head's, in face sizes, at most
    layered: bool = True  # person (segmentation) moves over a still, inpainted background plate


class _MeshFinder:
    """mediapipe face mesh on crops, for callers that pass no landmarks."""

    def __init__(self, static: bool) -> None:
        import mediapipe as mp

        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=static, max_num_faces=1, refine_landmarks=False,
            min_detection_confidence=0.5, min_tracking_confidence=0.5,
        )

    def find(self, image: np.ndarray) -> np.ndarray | None:
        result = self._mesh.process(image)
        if not result.multi_face_landmarks:
            return None
        h, w = image.shape[:2]
        lms = result.multi_face_landmarks[0].landmark
        pts = np.array([(p.x * w, p.y * h) for p in lms[: lg.N_LANDMARKS]], dtype=np.float32)
        return pts

    def close(self) -> None:
        self._mesh.close()


def person_layers(image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(alpha HxW float32 in [0, 1], background plate frame) of a source crop.

    alpha: mediapipe selfie segmentation united with the (dilated) face oval, so a painted or
    cartoon face that the segmenter misses still moves; the plate is the image with the
    person inpainted (on a half-size copy: it only shows where the person moved away).
    """
    import mediapipe as mp

    h, w = image.shape[:2]
    with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) as seg:
        mask = seg.process(image).segmentation_mask
    alpha = np.zeros((h, w), np.float32) if mask is None else mask.astype(np.float32)
    alpha = np.clip((alpha - 0.5) * 4.0 + 0.5, 0.0, 1.0)  # harden: a narrow soft edge
    oval = np.zeros((h, w), np.float32)
    cv2.fillPoly(oval, [np.round(landmarks[list(lg.FACE_OVAL_RING)]).astype(np.int32)], 1.0)
    k = max(3, int(0.06 * w) | 1)
    oval = cv2.dilate(oval, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    alpha = cv2.GaussianBlur(np.maximum(alpha, oval), (3, 3), 0)
    small = cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    hole = cv2.resize((alpha > 0.1).astype(np.uint8), (w // 2, h // 2), interpolation=cv2.INTER_NEAREST)
    hole = cv2.dilate(hole, np.ones((5, 5), np.uint8))
    filled = cv2.inpaint(small, hole, 5, cv2.INPAINT_TELEA)
    filled = cv2.resize(filled, (w, h), interpolation=cv2.INTER_LINEAR)
    keep = (1.0 - cv2.resize(hole.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR))[..., None]
    plate = image * keep + filled * (1.0 - keep)
    # What shows behind the person: the plate under the person, the image elsewhere (so that
    # composing the unmoved person over it gives the image back up to its soft edge).
    a = alpha[..., None]
    behind = np.clip(image * (1.0 - a) + plate * a, 0, 255).astype(np.uint8)
    return alpha, np.ascontiguousarray(behind)


class LandmarkEngine:
    """Animate a source crop with the landmark motion of driving crops (see module doc)."""

    name = "landmarks"

    def __init__(self, size: int = 256, options: MotionOptions | None = None,
                 params: LandmarkParams | None = None) -> None:
        self.size = int(size)
        self.device = "cpu (numpy/OpenCV)"
        self.options = options or MotionOptions()
        self.params = params or LandmarkParams()
        self._finders: dict[bool, _MeshFinder] = {}
        self._dis = None
        self._src: dict[str, object] | None = None
        self._ref: dict[str, object] | None = None
        self._debug: dict[str, np.ndarray] = {}
        r = self.params.flow_res
        # Grid of the coarse flow at pixel centres, in crop pixels (cv2.resize convention).
        self._xs = ((np.arange(r) + 0.5) * (self.size / r) - 0.5).astype(np.float32)
        self._ys = self._xs.copy()
        self._grid_c = np.stack(np.meshgrid(self._xs, self._ys), axis=-1)
        d = np.minimum.outer(np.minimum(self._ys + 0.5, self.size - 0.5 - self._ys),
                             np.minimum(self._xs + 0.5, self.size - 0.5 - self._xs))
        tau = self.params.border_tau * self.size / 256.0
        self._border_w = (self.params.border_amp * np.exp(-d / tau) + 1e-6).astype(np.float32)
        full = np.arange(self.size, dtype=np.float32)
        self._gx, self._gy = np.meshgrid(full, full)
        # Flow fades to exactly zero on the outermost pixels.
        dfull = np.minimum.outer(np.minimum(full, self.size - 1 - full), np.minimum(full, self.size - 1 - full))
        self._edge = np.clip(dfull / 2.0, 0.0, 1.0).astype(np.float32)

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
            finder = self._finders[static] = _MeshFinder(static)
        pts = finder.find(image)
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
        kp = lm.group_centroids(pts, idx, mask)
        sigma = np.maximum(p.sigma_scale * lm.group_spread(pts, idx, mask), p.sigma_min * k256)
        oval = pts[list(lg.FACE_OVAL_RING)]
        face_size = float(np.sqrt(cv2.contourArea(oval.astype(np.float32))))
        # "Down" of the face: perpendicular to the line between the outer eye corners.
        eyes = pts[lg.LEFT_EYE_CORNERS[0]] - pts[lg.RIGHT_EYE_CORNERS[0]]
        down = np.array([-eyes[1], eyes[0]]) / max(float(np.hypot(*eyes)), 1e-6)
        alpha, plate = person_layers(image, pts) if p.layered else (None, None)
        self._src = {
            "alpha": alpha,
            "plate": plate,
            "image": np.ascontiguousarray(image),
            "landmarks": pts,
            "names": names,
            "idx": idx,
            "mask": mask,
            "kp": kp,
            "sigma": sigma,
            "centre": pts.mean(0),
            "face_size": face_size,
            "body": pts.mean(0) + down * (p.body_offset * face_size),
            "mouth": lm.opening_axis(pts, lg.MOUTH_CORNERS, lg.MOUTH_INNER_PAIRS),
            "reye": lm.opening_axis(pts, lg.RIGHT_EYE_CORNERS, lg.RIGHT_EYE_PAIRS),
            "leye": lm.opening_axis(pts, lg.LEFT_EYE_CORNERS, lg.LEFT_EYE_PAIRS),
        }
        if self._ref is not None:
            self._align_reference()

    def set_reference(self, image: np.ndarray | None, landmarks: np.ndarray | None = None) -> None:
        if image is None and landmarks is None:
            self._ref = None
            return
        if image is not None:
            image = self._check(image, "reference")
        pts = self._landmarks(image, landmarks, True, "reference").astype(np.float64)
        self._ref = {"landmarks": pts, "small": self._small_gray(image)}
        if self._src is not None:
            self._align_reference()

    def _align_reference(self) -> None:
        """Cache what depends on the (source, reference) pair: the aligning similarity."""
        assert self._src is not None and self._ref is not None
        ref = self._ref["landmarks"]
        self._ref["to_source"] = lm.fit_similarity(ref, self._src["landmarks"])
        self._ref["kp"] = lm.group_centroids(ref, self._src["idx"], self._src["mask"])
        # Body region of the reference (below the chin, about the shoulders' width) on the flow grid.
        self._ref["body_pts"] = None
        if self._ref.get("small") is not None:
            r = self.params.body_flow_res
            k = r / self.size
            to_src: lm.Similarity = self._ref["to_source"]
            fs = self._src["face_size"] / max(to_src.scale, 1e-6)
            chin = ref[152] * k
            cx = ref.mean(0)[0] * k
            yy, xx = np.mgrid[0:r:2, 0:r:2].astype(np.float32)
            sel = (yy > chin[1] + 0.1 * fs * k) & (np.abs(xx - cx) < 1.3 * fs * k) & (yy < r - 2)
            if sel.sum() >= 12:
                self._ref["body_pts"] = np.stack([xx[sel], yy[sel]], axis=1)

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
            self._ref = {"landmarks": drv.copy(), "small": self._small_gray(image)}
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

    # --- the motion ------------------------------------------------------------------------

    def _small_gray(self, image: np.ndarray | None) -> np.ndarray | None:
        if image is None or not self.params.body_flow:
            return None
        r = self.params.body_flow_res
        return cv2.cvtColor(cv2.resize(image, (r, r), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)

    def _body_motion(self, image: np.ndarray) -> lm.Similarity | None:
        """Similarity motion (crop px) of the driving body between the reference and ``image``."""
        ref = self._ref
        if ref is None or ref.get("body_pts") is None:
            return None
        if self._dis is None:
            self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        cur = self._small_gray(image)
        flow = self._dis.calc(ref["small"], cur, None)
        pts = ref["body_pts"]
        ix = pts.astype(np.int32)
        moved = pts + flow[ix[:, 1], ix[:, 0]]
        k = self.size / self.params.body_flow_res
        sim = lm.fit_similarity((pts + 0.5) * k - 0.5, (moved + 0.5) * k - 0.5)
        # Implausible body motion (a scene cut, a hand in front): use the damped head instead.
        angle = abs(float(np.degrees(np.arctan2(sim.A[1, 0], sim.A[0, 0]))))
        shift = float(np.linalg.norm(flow[ix[:, 1], ix[:, 0]].mean(0))) * k
        if not (0.8 < sim.scale < 1.25 and angle < 20.0 and shift < 0.25 * self.size):
            return None
        return sim

    def _animate(self, drv: np.ndarray, image: np.ndarray) -> np.ndarray:
        src, ref, p = self._src, self._ref, self.params
        assert src is not None and ref is not None
        idx, mask = src["idx"], src["mask"]
        ref_pts = ref["landmarks"]
        to_src: lm.Similarity = ref["to_source"]
        kp_src = src["kp"]
        kp_drv = lm.group_centroids(drv, idx, mask)
        head = lm.fit_similarity(ref_pts, drv)  # rigid-ish head motion ref -> driving
        if self.options.relative:
            A = lm.adapt_linear(to_src, self.options.adapt_scale)
            jac = lm.fit_group_jacobians(ref_pts, drv, idx, mask, p.ridge)
            kp_new, J_new = lm.relative_transfer(kp_src, ref["kp"], kp_drv, jac, A)
            head_new = src["centre"] + (head.apply(ref_pts.mean(0)[None])[0] - ref_pts.mean(0)) @ A.T
            head_J = A @ head.A @ lm.inv2(A)
            target = src["landmarks"] + (drv - ref_pts) @ A.T
        else:
            # Absolute: the driving face itself, placed on the source by the aligning similarity.
            target = to_src.apply(drv)
            kp_new = lm.group_centroids(target, idx, mask)
            J_new = lm.fit_group_jacobians(src["landmarks"], target, idx, mask, p.ridge)
            whole = lm.fit_similarity(src["landmarks"], target)
            head_new = whole.apply(src["centre"][None])[0]
            head_J = whole.A
        # Expression on top of the head motion is bounded (a scene cut or a lost face must not
        # tear the picture apart): each keypoint stays within max_expression face sizes of
        # where the head motion alone would put it.
        rigid = head_new + (kp_src - src["centre"]) @ head_J.T
        excess = kp_new - rigid
        limit = p.max_expression * src["face_size"]
        norm = np.linalg.norm(excess, axis=1, keepdims=True)
        kp_new = rigid + excess * np.minimum(1.0, limit / np.maximum(norm, 1e-9))

        kps_new = np.vstack([kp_new, head_new[None]])
        kps_src = np.vstack([kp_src, src["centre"][None]])
        jacs = np.concatenate([J_new, head_J[None]], axis=0)
        affines = lm.backward_affines(kps_src, kps_new, jacs)
        # Body (neck, shoulders): the driving body's own motion, transferred like a keypoint,
        # else a damped copy of the head's backward map.
        body_src = src["body"]
        body = self._body_motion(image)
        if body is not None:
            A_b = lm.adapt_linear(to_src, self.options.adapt_scale)
            ref_body = np.linalg.solve(to_src.A, body_src - to_src.b)
            body_new, body_J = lm.relative_transfer(body_src[None], ref_body[None], body.apply(ref_body[None]),
                                                    body.A[None], A_b)
            body_new = body_new[0]
            body_aff = lm.backward_affines(body_src[None], body_new[None], body_J)[0]
        else:
            identity = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 0.0])
            body_aff = (1.0 - p.body_follow) * identity + p.body_follow * affines[-1]
            B = body_aff[:4].reshape(2, 2)
            body_new = np.linalg.solve(B, body_src - body_aff[4:])
        affines = np.vstack([affines, body_aff[None]])
        kps_all = np.vstack([kps_new, body_new[None]])
        fs = src["face_size"]
        sigma = np.concatenate([src["sigma"], [p.head_sigma * fs, p.body_sigma * fs]])
        amp = np.concatenate([np.ones(len(kp_new)), [p.head_amp, p.body_amp]])
        weights = lm.gaussian_weights(kps_all, sigma, amp, self._xs, self._ys)

        # Openings that the output shows wider than the source: interior maps + weights.
        extra_w, extra_a, mouth_poly, mouth_dark = [], [], None, 0.0
        for key, ring, corners, pairs in (
            ("mouth", lg.MOUTH_INNER_RING, lg.MOUTH_CORNERS, lg.MOUTH_INNER_PAIRS),
            ("reye", lg.RIGHT_EYE_RING, lg.RIGHT_EYE_CORNERS, lg.RIGHT_EYE_PAIRS),
            ("leye", lg.LEFT_EYE_RING, lg.LEFT_EYE_CORNERS, lg.LEFT_EYE_PAIRS),
        ):
            s_axis = src[key]
            n_axis = lm.opening_axis(target, corners, pairs)
            gain = np.clip((n_axis[3] - s_axis[3]) / max(0.08 * n_axis[2], 1e-6), 0.0, 1.0)
            if gain <= 0.0:
                continue
            poly = target[list(ring)]
            extra_w.append(self._polygon_weight(poly) * (p.region_amp * gain))
            extra_a.append(lm.region_affine(s_axis, n_axis))
            if key == "mouth":
                mouth_poly = poly
                mouth_dark = p.mouth_darken * gain * float(np.clip(1.0 - s_axis[3] / max(n_axis[3], 1e-6), 0, 1))

        all_w = [weights, *(w[None] for w in extra_w), self._border_w[None]]
        all_a = [affines, *(a[None] for a in extra_a), np.array([[1, 0, 0, 1, 0, 0]], dtype=np.float64)]
        W = np.concatenate(all_w, axis=0)
        affs = np.concatenate(all_a, axis=0)
        coarse = lm.blend_backward(W, affs, self._xs, self._ys)  # rxrx2 sampling positions

        r = p.flow_res
        flow_c = coarse - self._grid_c
        flow = cv2.resize(flow_c, (self.size, self.size), interpolation=cv2.INTER_LINEAR) if r != self.size else flow_c
        flow *= self._edge[..., None]
        map_x = self._gx + flow[..., 0]
        map_y = self._gy + flow[..., 1]
        out = cv2.remap(src["image"], map_x, map_y, interpolation=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE)
        if src["alpha"] is not None:
            a = cv2.remap(src["alpha"], map_x, map_y, interpolation=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
            out = cv2.blendLinear(out, src["plate"], a, 1.0 - a)
        if mouth_poly is not None and mouth_dark > 0.01:
            out = self._darken(out, mouth_poly, mouth_dark)
        self._debug = {
            "kp_source": kps_src.astype(np.float32),
            "kp_driving": np.vstack([kp_drv, head.apply(ref_pts.mean(0)[None])]).astype(np.float32),
            "kp_output": kps_new.astype(np.float32),
            "flow": flow,
            "weights": W,
        }
        return np.ascontiguousarray(out)

    def _polygon_weight(self, poly: np.ndarray) -> np.ndarray:
        """Soft mask (flow grid) of a polygon given in crop px."""
        r = self.params.flow_res
        canvas = np.zeros((r, r), np.float32)
        pts = np.round(((poly + 0.5) * (r / self.size) - 0.5) * 4).astype(np.int32)
        cv2.fillPoly(canvas, [pts], 1.0, lineType=cv2.LINE_AA, shift=2)
        return cv2.GaussianBlur(canvas, (3, 3), 0)

    def _darken(self, out: np.ndarray, poly: np.ndarray, amount: float) -> np.ndarray:
        """Darken a newly opened mouth's interior (soft polygon mask, only its bounding box)."""
        k = max(3, int(self.size / 64) | 1)
        x0, y0 = np.floor(poly.min(0)).astype(int) - k
        x1, y1 = np.ceil(poly.max(0)).astype(int) + k + 1
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, self.size), min(y1, self.size)
        if x1 <= x0 or y1 <= y0:
            return out
        canvas = np.zeros((y1 - y0, x1 - x0), np.float32)
        pts = np.round((poly - (x0, y0)) * 4).astype(np.int32)
        cv2.fillPoly(canvas, [pts], 1.0, lineType=cv2.LINE_AA, shift=2)
        canvas = cv2.GaussianBlur(canvas, (k, k), 0)
        factor = (1.0 - amount * canvas)[..., None]
        region = out[y0:y1, x0:x1]
        out[y0:y1, x0:x1] = (region * factor).astype(np.uint8)
        return out
