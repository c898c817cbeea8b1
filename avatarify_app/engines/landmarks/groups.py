"""Which face-mesh landmarks form each keypoint of the landmark engine.

Indices follow mediapipe's 468-point face mesh. Semantic groups (lips, eyelids,
brows, face-oval segments) are listed by hand so that parts which move against each
other (upper and lower lid, upper and lower lip) never share a keypoint; the remaining
points (cheeks, forehead, nose, chin) are clustered on the source face.
"""

from __future__ import annotations

import numpy as np

from avatarify_app.tracking.types import N_LANDMARKS

# Contours in ring order (used for the interior polygons and for opening heights).
MOUTH_INNER_RING = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308,
                    324, 318, 402, 317, 14, 87, 178, 88, 95)
MOUTH_INNER_PAIRS = ((81, 178), (82, 87), (13, 14), (312, 317), (311, 402))
MOUTH_INNER_CORNERS = (78, 308)

RIGHT_EYE_RING = (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7)
RIGHT_EYE_PAIRS = ((160, 144), (159, 145), (158, 153))
RIGHT_EYE_CORNERS = (33, 133)
LEFT_EYE_RING = (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249)
LEFT_EYE_PAIRS = ((387, 373), (386, 374), (385, 380))
LEFT_EYE_CORNERS = (263, 362)

FACE_OVAL_RING = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378,
                  400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21,
                  54, 103, 67, 109)

# Hand-made groups: name -> landmark indices.
SEMANTIC_GROUPS: dict[str, tuple[int, ...]] = {
    "upper_lip": (185, 40, 39, 37, 0, 267, 269, 270, 409, 191, 80, 81, 82, 13, 312, 311, 310, 415),
    "lower_lip": (146, 91, 181, 84, 17, 314, 405, 321, 375, 95, 88, 178, 87, 14, 317, 402, 318, 324),
    "mouth_corner_r": (61, 78, 185, 146, 191, 95),
    "mouth_corner_l": (291, 308, 409, 375, 415, 324),
    "right_upper_lid": (33, 246, 161, 160, 159, 158, 157, 173, 133),
    "right_lower_lid": (33, 7, 163, 144, 145, 153, 154, 155, 133),
    "left_upper_lid": (263, 466, 388, 387, 386, 385, 384, 398, 362),
    "left_lower_lid": (263, 249, 390, 373, 374, 380, 381, 382, 362),
    "right_brow_outer": (70, 63, 105, 46, 53, 52),
    "right_brow_inner": (105, 66, 107, 52, 65, 55),
    "left_brow_outer": (300, 293, 334, 276, 283, 282),
    "left_brow_inner": (334, 296, 336, 282, 295, 285),
}

OVAL_SEGMENT = 5  # points per face-oval segment (neighbouring segments share one point)


def oval_groups() -> dict[str, tuple[int, ...]]:
    """The face oval cut into overlapping runs of OVAL_SEGMENT points."""
    ring = FACE_OVAL_RING
    step = OVAL_SEGMENT - 1
    out: dict[str, tuple[int, ...]] = {}
    for n, start in enumerate(range(0, len(ring), step)):
        out[f"oval_{n}"] = tuple(ring[(start + i) % len(ring)] for i in range(OVAL_SEGMENT))
    return out


def _farthest_point_init(points: np.ndarray, k: int) -> np.ndarray:
    """Deterministic k-means seeds: start at the point nearest the centroid, then farthest points."""
    centre = points.mean(axis=0)
    chosen = [int(np.argmin(((points - centre) ** 2).sum(1)))]
    dist = ((points - points[chosen[0]]) ** 2).sum(1)
    for _ in range(1, k):
        idx = int(np.argmax(dist))
        chosen.append(idx)
        dist = np.minimum(dist, ((points - points[idx]) ** 2).sum(1))
    return points[chosen].copy()


def cluster_rest(landmarks: np.ndarray, k: int, iterations: int = 20) -> dict[str, tuple[int, ...]]:
    """Cluster the landmarks no hand-made group uses into ``k`` groups (k-means on the source)."""
    used: set[int] = set()
    for g in SEMANTIC_GROUPS.values():
        used.update(g)
    used.update(FACE_OVAL_RING)
    rest = np.array([i for i in range(N_LANDMARKS) if i not in used])
    pts = landmarks[rest].astype(np.float64)
    centres = _farthest_point_init(pts, k)
    labels = np.zeros(len(pts), dtype=np.int64)
    for _ in range(iterations):
        labels = np.argmin(((pts[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
        for c in range(k):
            members = pts[labels == c]
            if len(members):
                centres[c] = members.mean(axis=0)
    out: dict[str, tuple[int, ...]] = {}
    for c in range(k):
        members = rest[labels == c]
        if len(members) >= 3:
            out[f"cluster_{c}"] = tuple(int(i) for i in members)
    return out


def build_groups(source_landmarks: np.ndarray, n_clusters: int = 16) -> dict[str, tuple[int, ...]]:
    """Every keypoint group for one source face (semantic, oval segments, clusters)."""
    groups = dict(SEMANTIC_GROUPS)
    groups.update(oval_groups())
    groups.update(cluster_rest(source_landmarks, n_clusters))
    return groups
