"""Face tracking for a live stream: mesh tracking, a smoothed crop box, crop and landmarks.

Per frame (640x480 on a 2-core CPU: about 5 ms):

1. mediapipe's face mesh in tracking mode on the frame, downscaled so its long side is at
   most ``TRACK_MAX_SIDE`` (the mesh follows the previous frame's face and runs its own
   detector only when it lost it);
2. when it finds nothing, every ``REDETECT_EVERY`` frames the full-range detector looks for a
   small or distant face; if one is found the mesh runs on a region around it ("region mode")
   and that region follows the face until the face is big enough for step 1 again;
3. the VoxCeleb-style box (``tracking.crop``) is smoothed with a One Euro filter in crop px,
   so it keeps still when the head does and follows real motion within a few frames; the
   user's zoom and offsets apply on top;
4. the crop is cut from the full-resolution frame and the raw landmarks mapped into it.
"""

from __future__ import annotations

import logging

import numpy as np

from avatarify_app.config import CropConfig, TrackingConfig
from avatarify_app.frames import check_frame, resize
from avatarify_app.tracking.crop import CropBox, crop_box_for_landmarks, face_size
from avatarify_app.tracking.mediapipe_backend import FULL_RANGE, FaceDetector, FaceMesh
from avatarify_app.tracking.portrait import MESH_REGION_SCALE, check_backend
from avatarify_app.tracking.smoothing import OneEuroFilter
from avatarify_app.tracking.types import Face, TrackResult

log = logging.getLogger(__name__)

TRACK_MAX_SIDE = 640
"""The mesh tracks on a copy of the frame no longer than this (it looks at 192 px anyway)."""
REDETECT_EVERY = 5
"""While no face is tracked, the full-range detector runs on every n-th frame (about 8 ms)."""
REGION_SIZE = 256
"""Region mode: the mesh runs on this many px around the small face."""
REGION_EXIT_FRACTION = 0.25
"""Region mode ends once the face is this fraction of the frame's short side and step 1 finds it."""
LOST_RESET_S = 0.5
"""A face seen again after this long a gap starts a fresh filter (the box jumps to it)."""
D_CUTOFF_HZ = 1.0


class StreamTracker:
    """Tracks one face through a stream of frames. Owns tracking-mode mediapipe graphs.

    Use from one thread; ``close()`` when done. ``set_crop`` may be called between frames.
    """

    def __init__(self, config: TrackingConfig | None = None) -> None:
        self.config = config or TrackingConfig()
        check_backend(self.config)
        if self.config.backend == "face_alignment":
            log.info("The live stream tracks with mediapipe; face_alignment is used for portraits only.")
        conf = self.config.min_detection_confidence
        self._mesh: FaceMesh | None = FaceMesh(static=False, min_detection_confidence=conf)
        self._detector: FaceDetector | None = None  # built on first need
        self._region_mesh: FaceMesh | None = None
        self._crop = self.config.crop
        self._filter = OneEuroFilter(self._crop.min_cutoff, self._crop.beta, D_CUTOFF_HZ)
        self.reset()

    # -- public -----------------------------------------------------------------------------
    def set_crop(self, crop: CropConfig) -> None:
        """New zoom/offsets apply from the next frame; new filter constants keep the state."""
        self._crop = crop
        self._filter.min_cutoff, self._filter.beta = crop.min_cutoff, crop.beta

    def reset(self) -> None:
        """Forget the face: the next frame starts from scratch (no smoothing across).

        mediapipe's tracking-mode mesh keeps its own idea of where the face was, so a mesh
        that has seen frames is rebuilt too (about 0.1 s; resets are rare: cuts, new sources).
        """
        if getattr(self, "_mesh_used", False) and self._mesh is not None:
            self._mesh.close()
            self._mesh = FaceMesh(static=False, min_detection_confidence=self.config.min_detection_confidence)
        self._mesh_used = False
        self._filter.reset()
        self._last_seen: float | None = None
        self._misses = 0
        self._region: CropBox | None = None
        self._region_frames = 0
        self._shape: tuple[int, ...] | None = None

    def close(self) -> None:
        for name in ("_mesh", "_detector", "_region_mesh"):
            graph = getattr(self, name)
            if graph is not None:
                graph.close()
                setattr(self, name, None)

    def __enter__(self) -> StreamTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def process(self, frame: np.ndarray, timestamp_s: float) -> TrackResult | None:
        """Track the face in ``frame`` (captured at ``timestamp_s``); None when there is none."""
        check_frame(frame)
        if self._mesh is None:
            raise RuntimeError("StreamTracker is closed")
        if frame.shape != self._shape:  # a new source: nothing carries over
            self.reset()
            self._shape = frame.shape
        self._mesh_used = True
        pts = self._track(frame)
        if pts is None:
            return None
        if self._last_seen is not None and timestamp_s - self._last_seen > LOST_RESET_S:
            self._filter.reset()
        self._last_seen = timestamp_s
        raw = crop_box_for_landmarks(pts)
        size = self._crop.size
        prev = self._filter.value
        speed_scale = size / (prev[2] if prev is not None else raw.side)
        cx, cy, side = self._filter.filter(np.array([raw.cx, raw.cy, raw.side]), timestamp_s, speed_scale)
        box = CropBox(float(cx), float(cy), float(max(side, 1.0))).nudged(self._crop)
        extent = np.concatenate([pts.min(axis=0), pts.max(axis=0)]).astype(np.float32)
        return TrackResult(
            face=Face(box=extent, landmarks=pts, score=1.0),
            box=box,
            crop=box.extract(frame, size),
            landmarks=box.to_crop(pts, size),
        )

    # -- internals --------------------------------------------------------------------------
    def _track(self, frame: np.ndarray) -> np.ndarray | None:
        """Raw 468 landmarks in frame px, or None."""
        h, w = frame.shape[:2]
        scale = min(1.0, TRACK_MAX_SIDE / max(h, w))
        small = resize(frame, (round(w * scale), round(h * scale))) if scale < 1.0 else frame
        if self._region is None:
            pts = self._mesh_full(small, scale)
            if pts is not None:
                self._misses = 0
                return pts
            self._misses += 1
            if (self._misses - 1) % REDETECT_EVERY:
                return None
            if self._detector is None:
                self._detector = FaceDetector(FULL_RANGE, self.config.min_detection_confidence)
            found = self._detector.detect(small)
            if not found:
                return None
            box = max(found, key=lambda f: float((f[0][2] - f[0][0]) * (f[0][3] - f[0][1])))[0] / scale
            side = MESH_REGION_SCALE * float(max(box[2] - box[0], box[3] - box[1]))
            self._region = CropBox(float(box[0] + box[2]) / 2, float(box[1] + box[3]) / 2, side)
            self._region_frames = 0
            log.debug("small face found at %s; tracking it in region mode", self._region)
        return self._track_region(frame, small, scale)

    def _mesh_full(self, small: np.ndarray, scale: float) -> np.ndarray | None:
        assert self._mesh is not None
        pts = self._mesh.landmarks(small)
        return None if pts is None else pts / scale

    def _track_region(self, frame: np.ndarray, small: np.ndarray, scale: float) -> np.ndarray | None:
        assert self._region is not None
        if self._region_mesh is None:
            self._region_mesh = FaceMesh(static=True, min_detection_confidence=self.config.min_detection_confidence)
        region = self._region
        pts = self._region_mesh.landmarks(region.extract(frame, REGION_SIZE))
        if pts is None:
            self._region = None
            self._misses = 1
            return None
        pts = region.to_image(pts, REGION_SIZE)
        size = face_size(pts)
        self._region_frames += 1
        centre = pts.mean(axis=0)
        self._region = CropBox(float(centre[0]), float(centre[1]), MESH_REGION_SCALE * size)
        h, w = frame.shape[:2]
        if size > REGION_EXIT_FRACTION * min(h, w) and self._region_frames % REDETECT_EVERY == 0:
            full = self._mesh_full(small, scale)
            if full is not None:
                self._region, self._misses = None, 0
                return full
        return pts
