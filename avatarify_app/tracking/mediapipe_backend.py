"""Thin owners of mediapipe's legacy ``solutions`` graphs (face detection and face mesh).

mediapipe is imported when a graph is built, not at import. Each object owns its graph (about
30-100 ms to build, so build once and reuse) and must be used from one thread at a time.
"""

from __future__ import annotations

import logging

import numpy as np

from avatarify_app.tracking.types import N_LANDMARKS

log = logging.getLogger(__name__)

SHORT_RANGE, FULL_RANGE = 0, 1


class FaceDetector:
    """mediapipe face detection; ``model_selection`` 0 = short range (< 2 m), 1 = full range (< 5 m)."""

    def __init__(self, model_selection: int, min_confidence: float = 0.5) -> None:
        from mediapipe.python.solutions import face_detection

        self.model_selection = model_selection
        self._graph = face_detection.FaceDetection(
            model_selection=model_selection, min_detection_confidence=min_confidence
        )

    def detect(self, frame: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """Faces in ``frame`` as ``(box x0,y0,x1,y1 float32 image px, score)``, best first."""
        h, w = frame.shape[:2]
        result = self._graph.process(frame)
        found: list[tuple[np.ndarray, float]] = []
        for det in result.detections or ():
            bb = det.location_data.relative_bounding_box
            box = np.array(
                [bb.xmin * w, bb.ymin * h, (bb.xmin + bb.width) * w, (bb.ymin + bb.height) * h], np.float32
            )
            if not np.all(np.isfinite(box)) or box[2] <= box[0] or box[3] <= box[1]:
                continue
            found.append((box, float(det.score[0]) if det.score else 0.0))
        found.sort(key=lambda item: -item[1])
        return found

    def close(self) -> None:
        if self._graph is not None:
            self._graph.close()
            self._graph = None  # type: ignore[assignment]


class FaceMesh:
    """mediapipe face mesh, 468 points. ``static=True`` for photos, False to track a stream."""

    def __init__(self, static: bool, min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5) -> None:
        from mediapipe.python.solutions import face_mesh

        self.static = static
        self._graph = face_mesh.FaceMesh(
            static_image_mode=static,
            max_num_faces=1,
            refine_landmarks=False,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )

    def landmarks(self, frame: np.ndarray) -> np.ndarray | None:
        """(468, 2) float32 px of ``frame`` (may lie outside it), or None when no face."""
        h, w = frame.shape[:2]
        result = self._graph.process(frame)
        if not result.multi_face_landmarks:
            return None
        lm = result.multi_face_landmarks[0].landmark
        pts = np.array([(p.x, p.y) for p in lm], np.float32)
        if pts.shape != (N_LANDMARKS, 2) or not np.all(np.isfinite(pts)):
            log.debug("face mesh returned %s points; ignored", pts.shape)
            return None
        pts *= np.array([w, h], np.float32)
        return pts

    def close(self) -> None:
        if self._graph is not None:
            self._graph.close()
            self._graph = None  # type: ignore[assignment]
