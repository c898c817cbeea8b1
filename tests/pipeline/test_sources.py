"""Real sources over real files written here (no camera on the test machines)."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from live_fakes import Fakes, coded_frame, wait_for, write_coded_video

from avatarify_app.errors import CameraError, SourceError
from avatarify_app.frames import save_image
from avatarify_app.pipeline import (
    CameraSource,
    ImageSource,
    Session,
    VideoFileSource,
    list_cameras,
    open_source,
)


@pytest.fixture
def video(tmp_path):
    path = tmp_path / "drive.avi"
    write_coded_video(path, 30, fps=50.0)
    return path


def read_all(source, limit=1000):
    frames = []
    source.open()
    try:
        while len(frames) < limit:
            got = source.read()
            if got is None:
                break
            frames.append(got)
    finally:
        source.close()
    return frames


def test_unpaced_video_reads_every_frame(video):
    source = VideoFileSource(video, paced=False)
    frames = read_all(source)
    assert len(frames) == 30 and not source.realtime
    frame, _t = frames[0]
    assert frame.dtype == np.uint8 and frame.shape == (48, 64, 3) and frame.flags.c_contiguous
    assert abs(int(frames[12][0][24, 32, 0]) - 12) <= 4  # RGB order, content intact
    assert source.fps == pytest.approx(50.0)
    assert all(b[1] >= a[1] for a, b in itertools.pairwise(frames))


def test_paced_video_keeps_its_frame_rate(video):
    source = VideoFileSource(video, paced=True)
    t0 = time.perf_counter()
    frames = read_all(source, limit=20)
    assert source.realtime and len(frames) == 20
    assert time.perf_counter() - t0 >= 19 / 50 * 0.9


def test_looping_video_wraps_around(video):
    frames = read_all(VideoFileSource(video, loop=True, paced=False), limit=75)
    assert len(frames) == 75
    assert abs(int(frames[30][0][24, 32, 0]) - 0) <= 4


def test_image_source_repeats_the_image(tmp_path):
    path = tmp_path / "still.png"
    save_image(path, coded_frame(7, (80, 80)))
    frames = read_all(ImageSource(path, paced=False), limit=5)
    assert len(frames) == 5 and frames[0][0][0, 0, 0] == 7


def test_open_source_dispatch(tmp_path, video):
    still = tmp_path / "still.jpg"
    save_image(still, coded_frame(7, (80, 80)))
    assert isinstance(open_source(0), CameraSource)
    assert isinstance(open_source("1"), CameraSource) and open_source("1").device == 1
    assert isinstance(open_source("/dev/video3"), CameraSource)
    assert isinstance(open_source(str(still)), ImageSource)
    src = open_source(str(video), loop=True, paced=False)
    assert isinstance(src, VideoFileSource) and src.loop and not src.realtime
    with pytest.raises(SourceError, match="No such camera or file"):
        open_source(str(tmp_path / "missing.mp4"))


def test_bad_video_file_is_a_source_error(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"garbage" * 100)
    with pytest.raises(SourceError):
        VideoFileSource(bad).open()


def test_missing_camera_is_a_camera_error_with_a_hint():
    with pytest.raises(CameraError) as info:
        CameraSource(63).open()
    assert "camera" in str(info.value).lower() and info.value.hint


def test_list_cameras_is_quick_and_typed():
    t0 = time.perf_counter()
    cameras = list_cameras()
    assert time.perf_counter() - t0 < 30
    for cam in cameras:
        assert cam.width > 0 and cam.label()


def test_camera_that_disappears_is_reported_and_retried(video):
    # OpenCV opens a file like a stream; when it runs dry, reads fail as an unplugged camera's do.
    wiring = Fakes(coded=True).wiring()
    session = Session(CameraSource(str(video)), avatar=coded_frame(5), **wiring)
    errors, events = [], []
    session.add_error_observer(errors.append)
    session.add_frame_observer(events.append)
    session.start()
    try:
        assert wait_for(lambda: len(errors) >= 1, 10)
        assert errors[0].stage == "source" and isinstance(errors[0].error, CameraError)
        assert "stopped delivering frames" in errors[0].message and "hint" in errors[0].message
        n = len(events)
        assert wait_for(lambda: len(events) > n + 5, 10)  # reopened after backoff: frames again
        assert session.running
    finally:
        session.stop()
