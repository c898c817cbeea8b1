"""The built-in landmark engine's registration: it needs no weights and runs on any CPU.

Importing this is cheap: ``engine.LandmarkEngine`` (mediapipe, OpenCV) loads when the
factory runs.
"""

from __future__ import annotations

from avatarify_app.config import EngineConfig, MotionOptions
from avatarify_app.engines.registry import Availability, EngineSpec


def detect(config: EngineConfig) -> Availability:
    return Availability(True, "built in, needs no weights")


def create(config: EngineConfig, motion: MotionOptions):
    from avatarify_app.engines.landmarks.engine import LandmarkEngine

    return LandmarkEngine.from_config(config, motion)


SPEC = EngineSpec(
    name="landmarks",
    display_name="Built-in (landmarks)",
    summary="face-mesh keypoints with local affine motion; no weights, real time on a CPU",
    factory=create,
    detect=detect,
    bench_factory=create,
)
