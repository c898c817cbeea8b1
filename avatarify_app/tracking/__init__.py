"""Face detection, 468-point landmarks, VoxCeleb-style square crops and their smoothing.

See docs/CONTRACTS.md ("tracking"). mediapipe (and torch, for the optional face_alignment
back-end) are imported only when a tracker is built.
"""

from avatarify_app.tracking.blend import paste_back
from avatarify_app.tracking.crop import CropBox, crop_box_for_landmarks, face_size
from avatarify_app.tracking.mediapipe_backend import FaceDetector, FaceMesh
from avatarify_app.tracking.portrait import PortraitAligner, align_portrait
from avatarify_app.tracking.pose import pose_distance, pose_match
from avatarify_app.tracking.smoothing import OneEuroFilter
from avatarify_app.tracking.stream import StreamTracker
from avatarify_app.tracking.types import N_LANDMARKS, AlignedFace, Face, TrackResult

__all__ = [
    "N_LANDMARKS",
    "AlignedFace",
    "CropBox",
    "Face",
    "FaceDetector",
    "FaceMesh",
    "OneEuroFilter",
    "PortraitAligner",
    "StreamTracker",
    "TrackResult",
    "align_portrait",
    "crop_box_for_landmarks",
    "face_size",
    "paste_back",
    "pose_distance",
    "pose_match",
]
