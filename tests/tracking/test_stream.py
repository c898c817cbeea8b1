"""StreamTracker with real mediapipe on real video files written and read back."""

from __future__ import annotations

import numpy as np
import pytest
from live_fakes import write_video

from avatarify_app.config import CropConfig, TrackingConfig
from avatarify_app.errors import ConfigError
from avatarify_app.tracking import StreamTracker, TrackResult, crop_box_for_landmarks, face_size
from avatarify_app.tracking.stream import REDETECT_EVERY

from .conftest import apply, place, read_video

FPS = 30.0


@pytest.fixture(scope="module")
def reference(astronaut):
    from avatarify_app.tracking import PortraitAligner

    with PortraitAligner() as a:
        return a.find_face(astronaut).landmarks


@pytest.fixture
def tracker():
    with StreamTracker(TrackingConfig()) as t:
        yield t


def _run(tracker: StreamTracker, frames: list[np.ndarray]) -> list[TrackResult | None]:
    return [tracker.process(f, i / FPS) for i, f in enumerate(frames)]


def _check_result(r: TrackResult, frame: np.ndarray, size: int = 256) -> None:
    assert r.crop.shape == (size, size, 3) and r.crop.dtype == np.uint8
    assert r.landmarks.shape == (468, 2) and r.landmarks.dtype == np.float32
    np.testing.assert_allclose(r.landmarks, r.box.to_crop(r.face.landmarks, size), atol=1e-3)
    # The crop shows the face where its landmarks say: compare with the crop cut directly.
    np.testing.assert_array_equal(r.crop, r.box.extract(frame, size))
    centre = r.landmarks.mean(axis=0)
    assert 0.3 * size < centre[0] < 0.7 * size and 0.25 * size < centre[1] < 0.65 * size


def _error(found: np.ndarray, expected: np.ndarray) -> float:
    return float(np.mean(np.linalg.norm(found - expected, axis=1)) / face_size(expected))


def test_moving_face_video_with_a_gap(tmp_path, tracker, astronaut, reference):
    frames, truth = [], []
    for i in range(60):
        x, y = 150 + 3 * i, 120 + 40 * np.sin(i / 10)
        canvas, m = place(astronaut, (480, 640), x, y)
        if 30 <= i < 36:  # the person leaves for a moment
            canvas = np.full_like(canvas, 100)
        frames.append(canvas)
        truth.append(apply(m, reference))
    frames = read_video(write_video(tmp_path / "moving.avi", frames))
    assert len(frames) == 60
    results = _run(tracker, frames)
    for i, (r, f) in enumerate(zip(results, frames, strict=True)):
        if 30 <= i < 36:
            assert r is None, f"frame {i}: a face was reported in an empty frame"
            continue
        if i in (36, 37) and r is None:  # re-detection may take a frame
            continue
        assert r is not None, f"frame {i}: face lost"
        _check_result(r, f)
        assert _error(r.face.landmarks, truth[i]) < 0.06


def test_rotated_face(tmp_path, tracker, astronaut, reference):
    frames, truth = [], []
    for angle in np.linspace(0, 28, 30):
        canvas, m = place(astronaut, (480, 640), 190, 110, angle_deg=float(angle))
        frames.append(canvas)
        truth.append(apply(m, reference))
    frames = read_video(write_video(tmp_path / "rot.avi", frames))
    results = _run(tracker, frames)
    assert all(r is not None for r in results)
    assert _error(results[-1].face.landmarks, truth[-1]) < 0.06
    _check_result(results[-1], frames[-1])


def test_small_face_found_by_full_range_detection(tmp_path, tracker, astronaut, reference):
    # Face ~60 px tall in a 640x480 frame: too small for the mesh's own short-range detector.
    frames, truth = [], []
    for i in range(25):
        canvas, m = place(astronaut, (480, 640), 400 + i, 250, scale=0.55)
        frames.append(canvas)
        truth.append(apply(m, reference))
    frames = read_video(write_video(tmp_path / "small.avi", frames))
    results = _run(tracker, frames)
    found = [i for i, r in enumerate(results) if r is not None]
    assert found and found[0] <= REDETECT_EVERY
    assert found == list(range(found[0], 25))  # once found, never lost
    for i in found:
        assert _error(results[i].face.landmarks, truth[i]) < 0.08
    _check_result(results[-1], frames[-1])


def test_half_out_of_frame(tmp_path, tracker, astronaut, reference):
    frames, truth = [], []
    for i in range(30):  # slides left until ~40% of the face is past the edge
        canvas, m = place(astronaut, (480, 640), x=100 - 9.5 * i, y=100, scale=1.4)
        frames.append(canvas)
        truth.append(apply(m, reference))
    frames = read_video(write_video(tmp_path / "edge.avi", frames))
    results = _run(tracker, frames)
    assert all(r is not None for r in results)
    last = results[-1]
    assert last.face.landmarks[:, 0].min() < 0 and last.box.x0 < 0
    assert _error(last.face.landmarks, truth[-1]) < 0.1
    _check_result(last, frames[-1])


def test_no_face_stream_is_none(tracker, rng):
    for i in range(12):  # includes full-range re-detection frames
        assert tracker.process(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8), i / FPS) is None


def test_smoothing_removes_jitter_and_follows_motion(tracker, astronaut, rng):
    frames = []
    for i in range(90):
        dx, dy = rng.uniform(-1.5, 1.5, 2)  # hand-held camera shake
        shift = 60 if i >= 60 else 0  # then the person really moves
        frames.append(place(astronaut, (480, 640), 150 + shift + dx, 110 + dy)[0])
    results = _run(tracker, frames)
    assert all(r is not None for r in results)
    raw = np.array([[b.cx, b.cy, b.side] for b in (crop_box_for_landmarks(r.face.landmarks) for r in results)])
    smooth = np.array([[r.box.cx, r.box.cy, r.box.side] for r in results])
    still = slice(20, 60)
    for k in range(3):
        assert np.std(np.diff(smooth[still, k])) < 0.35 * np.std(np.diff(raw[still, k])), k
    # The real move is followed within a few frames.
    before, after = smooth[55:60, 0].mean(), raw[80:90, 0].mean()
    assert after - before == pytest.approx(60, abs=6)
    assert smooth[65, 0] - before > 0.85 * (after - before)


def test_set_crop_reset_and_close(astronaut):
    frame = place(astronaut, (480, 640), 190, 110)[0]
    tracker = StreamTracker(TrackingConfig())
    a = tracker.process(frame, 0.0)
    tracker.set_crop(CropConfig(size=128, zoom=2.0, offset_y=0.1))
    b = tracker.process(frame, 1 / FPS)
    assert b.crop.shape == (128, 128, 3)
    assert b.box.side == pytest.approx(a.box.side / 2, rel=0.02)
    assert b.box.cy == pytest.approx(a.box.cy + 0.1 * b.box.side, abs=2)
    tracker.reset()
    assert tracker.process(frame, 2 / FPS) is not None
    with pytest.raises(ValueError):
        tracker.process(frame.astype(np.float32), 3 / FPS)
    tracker.close()
    tracker.close()  # idempotent
    with pytest.raises(RuntimeError):
        tracker.process(frame, 4 / FPS)


def test_unknown_backend_and_face_alignment_stream_uses_mediapipe(astronaut):
    with pytest.raises(ConfigError):
        StreamTracker(TrackingConfig(backend="nope"))
    with StreamTracker(TrackingConfig(backend="face_alignment")) as t:
        assert t.process(place(astronaut, (480, 640), 190, 110)[0], 0.0) is not None


def test_megamind_clip(media_dir):
    frames = read_video(media_dir / "Megamind.avi")[:120]
    with StreamTracker() as tracker:
        results = _run(tracker, frames)
    found = [r for r in results if r is not None]
    assert len(found) >= 0.95 * len(frames)
    for r, f in zip(results, frames, strict=True):
        if r is not None:
            _check_result(r, f)


def test_reset_forgets_mediapipes_own_tracking(astronaut):
    """After a cut, the first crop is framed on the new face, as a fresh tracker frames it."""
    # A big face, then (a cut) a smaller one at the same place: mediapipe's tracking mesh would
    # keep the old region and frame the new face like the old one (side ~330 instead of ~180).
    first = place(astronaut, (480, 640), 130, 40, scale=1.5)[0]
    second = place(astronaut, (480, 640), 230, 140, scale=0.7)[0]
    with StreamTracker(TrackingConfig()) as fresh:
        expected = fresh.process(second, 0.0).box
    with StreamTracker(TrackingConfig()) as tracker:
        for i in range(10):
            assert tracker.process(first, i / FPS) is not None
        tracker.reset()
        got = tracker.process(second, 10 / FPS).box
    assert got.cx == pytest.approx(expected.cx, abs=4)
    assert got.cy == pytest.approx(expected.cy, abs=4)
    assert got.side == pytest.approx(expected.side, rel=0.03)
