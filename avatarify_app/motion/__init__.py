"""Motion transfer between driving frames and the source: pure functions on keypoint dicts.

- ``relative``: FOMM's relative motion transfer.
- ``implicit_keypoints``: LivePortrait's implicit 3D keypoints (pose bins to degrees,
  rotation, ``transform_keypoint``) and stitching / eye / lip retargeting.
"""

from avatarify_app.motion.implicit_keypoints import (
    apply_stitching,
    headpose_to_degrees,
    retarget_eye,
    retarget_lip,
    rotation_matrix,
    stitching_delta,
    transform_keypoint,
)
from avatarify_app.motion.relative import convex_hull_area, relative_keypoints, relative_transform

__all__ = [
    "apply_stitching",
    "convex_hull_area",
    "headpose_to_degrees",
    "relative_keypoints",
    "relative_transform",
    "retarget_eye",
    "retarget_lip",
    "rotation_matrix",
    "stitching_delta",
    "transform_keypoint",
]
