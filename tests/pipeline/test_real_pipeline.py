"""The pipeline with the real tracker (mediapipe) and the real landmark engine on real media."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest
from live_fakes import wait_for, write_video

from avatarify_app.config import EngineConfig
from avatarify_app.frames import bgr_to_rgb
from avatarify_app.pipeline import Session, VideoFileSource
from avatarify_app.tracking.pose import CALIBRATION_MIN_MATCH

pytest.importorskip("avatarify_app.engines.landmarks")
pytest.importorskip("avatarify_app.tracking.stream")


def clip(media_dir, tmp_path, n=40):
    """The first n frames of Megamind.avi as a small file of our own."""
    cap = cv2.VideoCapture(str(media_dir / "Megamind.avi"))
    frames = []
    for _ in range(n):
        ok, image = cap.read()
        assert ok
        frames.append(bgr_to_rgb(image))
    cap.release()
    return write_video(tmp_path / "clip.avi", frames, 25)


def test_real_tracker_and_landmark_engine(media_dir, tmp_path):
    session = Session(VideoFileSource(clip(media_dir, tmp_path), paced=False),
                      engine_config=EngineConfig(name="landmarks"), avatar=media_dir / "mona.jpg")
    events, errors = [], []
    session.add_frame_observer(events.append)
    session.add_error_observer(errors.append)
    session.start()
    try:
        assert session.wait_ready(60) and session.has_avatar
        assert session.wait_ended(60)
        stats = session.stats()
    finally:
        session.stop()
    assert not errors, [e.message for e in errors]
    assert len(events) == 40 and stats.frames == 40 and stats.engine == "landmarks"
    ok = [e for e in events if e.status == "ok"]
    assert len(ok) >= 35
    e = ok[-1]
    assert e.output.shape == (256, 256, 3) and e.crop.shape == (256, 256, 3)
    assert e.landmarks.shape == (468, 2) and 0.0 <= e.pose_match <= 1.0
    assert e.output.std() > 10  # a picture, not a flat card
    # The held frame on a no-face frame is a real earlier output, never garbage.
    for prev, cur in itertools.pairwise(events):
        if cur.status == "no_face" and prev.status == "ok":
            assert cur.output is prev.output


def test_real_auto_calibration_and_avatar_switch(media_dir, tmp_path):
    session = Session(VideoFileSource(clip(media_dir, tmp_path, 30), loop=True, paced=False),
                      engine_config=EngineConfig(name="landmarks"), avatar=media_dir / "mona.jpg")
    events, errors, references = [], [], []
    session.add_frame_observer(events.append)
    session.add_error_observer(errors.append)
    session.add_reference_observer(references.append)
    session.start()
    try:
        assert session.wait_ready(60)
        assert wait_for(lambda: len(events) > 5 and references, 30)
        before = session.reference()
        request = session.auto_calibrate(10)
        assert wait_for(lambda: "calibrating" in [e.status for e in events], 30)
        n = len(events)
        assert wait_for(lambda: len(events) > n + 15 and events[-1].status == "ok", 30)
        first = [e.status for e in events].index("calibrating")
        matches = [e.pose_match for e in events[first:] if e.crop is not None][:10]  # the 10 it compared
        ref_crop, ref_lms = session.reference()
        assert ref_crop.shape == (256, 256, 3) and ref_lms.shape == (468, 2)
        assert len(matches) == 10 and all(m is not None and 0.0 <= m <= 1.0 for m in matches)
        picked = [r for r in references if r.request == request]
        rejected = [e for e in errors if e.request == request]
        if max(matches) >= CALIBRATION_MIN_MATCH:
            assert picked and picked[0].reason == "auto" and not rejected
        else:  # below the stated match: the old reference stays and the user hears which way to move
            assert not picked and rejected and rejected[0].stage == "calibration"
            assert "To match the portrait:" in rejected[0].message
            assert session.reference()[0] is before[0]
            assert all(e.pose_hint for e in events if e.status == "calibrating")
        errors = [e for e in errors if e.request != request]
        session.set_avatar(media_dir / "einstein.jpg")
        m = len(events)
        assert wait_for(lambda: len(events) > m + 10 and events[-1].status == "ok", 30)
        assert not np.array_equal(events[-1].output, events[m - 1].output)
    finally:
        session.stop()
    assert not errors, [e.message for e in errors]
