"""Fixtures for the server tests: the avatar and the demo clip, tracked once per session."""

from __future__ import annotations

import numpy as np
import pytest
import serve_helpers  # noqa: F401 (sets Ray's loopback environment before anything imports ray)


@pytest.fixture(scope="session")
def avatar_crop() -> tuple[np.ndarray, np.ndarray]:
    """The Mona Lisa avatar aligned at 256 px, with its landmarks."""
    from avatarify_app.frames import load_image
    from avatarify_app.paths import AVATARS_DIR
    from avatarify_app.tracking import align_portrait
    from avatarify_app.tracking.crop import to_size

    aligned = align_portrait(load_image(AVATARS_DIR / "mona_lisa.png"))
    return to_size(aligned.image, aligned.landmarks, 256)


@pytest.fixture(scope="session")
def driving_crops() -> list[tuple[np.ndarray, np.ndarray]]:
    """Aligned 256 px face crops (and landmarks) of the demo driving clip's first 48 frames."""
    from avatarify_app.paths import ASSETS_DIR
    from avatarify_app.pipeline.video import iter_video
    from avatarify_app.tracking import StreamTracker
    from avatarify_app.tracking.crop import to_size

    tracker = StreamTracker()
    crops = []
    try:
        for i, frame in enumerate(iter_video(ASSETS_DIR / "demo" / "driving.mp4", max_frames=48)):
            result = tracker.process(frame, i / 25.0)
            if result is not None:
                crops.append(to_size(result.crop, result.landmarks, 256))
    finally:
        tracker.close()
    assert len(crops) >= 40
    return crops
