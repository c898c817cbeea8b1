"""Motion transfer between driving frames and the source: pure functions on keypoint dicts."""

from avatarify_app.motion.relative import convex_hull_area, relative_keypoints, relative_transform

__all__ = ["convex_hull_area", "relative_keypoints", "relative_transform"]
