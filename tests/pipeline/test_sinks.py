"""Sinks: a REAL pyvirtualcam.Camera over a registered recording backend, real MP4 files."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
import pyvirtualcam
from live_fakes import Fakes, ListSource, RecordingBackend, coded_frame, decode, write_coded_video

from avatarify_app.config import VirtualCameraConfig
from avatarify_app.errors import SinkError, VirtualCameraUnavailable
from avatarify_app.pipeline import (
    NullSink,
    PreviewSink,
    RecorderSink,
    Session,
    VideoFileSource,
    VirtualCameraSink,
    virtual_camera_help,
)

BACKEND = "avatarify-test"


@pytest.fixture
def vcam_backend():
    RecordingBackend.instances = []
    RecordingBackend.fail_with = None
    pyvirtualcam.register_backend(BACKEND, RecordingBackend)
    yield RecordingBackend
    pyvirtualcam.camera.BACKENDS.pop(BACKEND, None)


def test_virtual_camera_gets_every_frame_in_order_through_a_session(vcam_backend):
    config = VirtualCameraConfig(width=64, height=48, fps=30, backend=BACKEND)
    sink = VirtualCameraSink(config, pace=False)
    assert sink.backend == BACKEND and sink.device == "test-vcam" and "64x48" in sink.status
    wiring = Fakes(coded=True).wiring()
    session = Session(ListSource([coded_frame(i) for i in range(120)]), avatar=coded_frame(999),
                      sinks=[sink], **wiring)
    session.start()
    try:
        assert session.wait_ended(10)
    finally:
        session.close()
    backend = vcam_backend.instances[0]
    assert backend.closed  # close() closed its sinks
    assert len(backend.frames) == 120
    assert all(f.shape == (48, 64, 3) and f.dtype == np.uint8 for f in backend.frames)
    assert [decode(f) for f in backend.frames] == list(range(120))
    # A square avatar letterboxed into 4:3: black bars left and right.
    assert backend.frames[5][24, 2].tolist() == [0, 0, 0]


def test_virtual_camera_fill_and_pacing(vcam_backend):
    sink = VirtualCameraSink(VirtualCameraConfig(width=64, height=48, fps=20, fit="fill", backend=BACKEND))
    square = coded_frame(9, (32, 32))
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 0.5:
        sink.send(square, time.perf_counter())
        time.sleep(0.002)
    sink.close()
    frames = vcam_backend.instances[0].frames
    assert 4 <= len(frames) <= 13  # ~20 fps (10 in 0.5 s) of a much faster caller, nothing blocked
    assert sink.frames_skipped > 20
    assert frames[0][24, 2].tolist() == [9, 0, 200]  # filled, no bars


def test_virtual_camera_validates_frames(vcam_backend):
    sink = VirtualCameraSink(VirtualCameraConfig(width=64, height=48, backend=BACKEND), pace=False)
    with pytest.raises(ValueError, match="uint8"):
        sink.send(np.zeros((48, 64, 3), np.float32), 0.0)
    sink.close()
    with pytest.raises(SinkError):
        sink.send(coded_frame(1), 0.0)


def test_missing_virtual_camera_says_how_to_get_one():
    """On the test machines the real v4l2loopback backend finds no device."""
    try:
        sink = VirtualCameraSink(VirtualCameraConfig(width=640, height=480))
    except VirtualCameraUnavailable as err:
        text = str(err)
        assert "No virtual camera could be opened" in text
        if "v4l2loopback" in pyvirtualcam.camera.BACKENDS:
            assert 'sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label="Avatarify"' in text
            assert "v4l2loopback-dkms" in text
        assert "restart the video-call app" in text
    else:  # a real virtual camera exists here
        sink.close()
        pytest.skip("this machine has a working virtual camera")


def test_unknown_backend_and_help_per_os():
    with pytest.raises(VirtualCameraUnavailable, match="Unknown virtual camera backend"):
        VirtualCameraSink(VirtualCameraConfig(backend="nope"))
    for system in ("Windows", "Darwin"):
        text = virtual_camera_help(system)
        assert "OBS Studio" in text and "Start Virtual Camera" in text and "restart the video-call app" in text
    assert "modprobe v4l2loopback" in virtual_camera_help("Linux")


def count_frames(path):
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image[:, :, ::-1])
    cap.release()
    return frames


@pytest.mark.parametrize("prefer", [("ffmpeg", "avc1", "mp4v"), ("mp4v",)])
def test_recorder_writes_a_readable_mp4(tmp_path, prefer):
    path = tmp_path / "out" / "rec.mp4"
    rec = RecorderSink(path, fps=25, size=(64, 48), prefer=prefer)
    for i in range(40):
        rec.send(coded_frame(i * 5, (64, 48)), i / 25)
    rec.close()
    rec.close()  # twice is fine
    assert rec.frames_written == 40
    if prefer[0] == "ffmpeg":
        assert rec.codec.startswith("H.264")
    else:
        assert "mp4v" in rec.codec
    frames = count_frames(path)
    assert len(frames) == 40
    assert frames[0].shape == (48, 64, 3)
    assert [abs(decode(f) - 5 * i) <= 4 for i, f in enumerate(frames)] == [True] * 40


def test_recorder_sync_repeats_late_frames(tmp_path):
    rec = RecorderSink(tmp_path / "sync.mp4", fps=10, sync=True)
    for k, t in enumerate([0.0, 0.1, 0.2, 0.5, 0.52, 0.6]):  # 0.3/0.4 missing, 0.52 early
        rec.send(coded_frame(k, (33, 25)), 100.0 + t)
    rec.close()
    assert rec.size == (32, 24)  # even sizes for yuv420p
    assert rec.frames_written == 7  # 0, .1, .2, (.3 .4 repeated), .5, .6
    assert len(count_frames(tmp_path / "sync.mp4")) == 7


def test_recorder_in_an_unwritable_place_is_a_sink_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SinkError):
        RecorderSink(blocker / "sub" / "out.mp4", size=(64, 48))


def test_session_records_every_frame_of_a_video_file(tmp_path):
    video = tmp_path / "drive.avi"
    write_coded_video(video, 45)
    rec = RecorderSink(tmp_path / "avatar.mp4", fps=30)
    previews = []
    wiring = Fakes(coded=True).wiring()
    session = Session(VideoFileSource(video, paced=False), avatar=coded_frame(999),
                      sinks=[rec, PreviewSink(lambda f, t: previews.append(f.shape)), NullSink()], **wiring)
    session.start()
    try:
        assert session.wait_ended(20)
    finally:
        session.close()
    assert len(previews) == 45 and rec.frames_written == 45
    assert len(count_frames(tmp_path / "avatar.mp4")) == 45
