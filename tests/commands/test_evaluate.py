"""`evaluate`: the reconstruction protocol on a small generated video, JSON summary."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from avatarify_app.cli import main
from avatarify_app.offline.metrics import ReconstructionScore, l1
from avatarify_app.offline.reconstruction import split_shots
from avatarify_app.paths import AVATARS_DIR


def _portrait() -> np.ndarray:
    from avatarify_app.frames import load_image

    shipped = AVATARS_DIR / "astronaut.png"
    if shipped.is_file():
        return load_image(shipped)
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def _write(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    import imageio_ffmpeg

    h, w = frames[0].shape[:2]
    writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=fps, quality=9, macro_block_size=1,
                                         ffmpeg_log_level="error")
    writer.send(None)
    for f in frames:
        writer.send(np.ascontiguousarray(f))
    writer.close()
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    """Two shots: the portrait nodding, then a cut to a flat grey card and back to the portrait."""
    base = cv2.resize(_portrait(), (240, 240), interpolation=cv2.INTER_AREA)
    frames = []
    for i in range(8):
        m = cv2.getRotationMatrix2D((120, 120), 5 * np.sin(i / 2), 1.0)
        frames.append(cv2.warpAffine(base, m, (240, 240), borderMode=cv2.BORDER_REPLICATE))
    frames += [np.full((240, 240, 3), 20, np.uint8)] * 3
    frames += frames[:4]
    return _write(tmp_path_factory.mktemp("evaluate") / "talk.mp4", frames)


def test_metrics_helpers():
    a = np.zeros((4, 4, 3), np.uint8)
    b = np.full((4, 4, 3), 51, np.uint8)
    assert l1(a, b) == pytest.approx(0.2)
    score = ReconstructionScore()
    score.add(a, b)
    s = score.summary()
    assert s["l1"] == pytest.approx(0.2) and s["akd"] is None and s["mkr"] is None and s["aed"] is None


def test_shots_are_cut_at_scene_changes(video):
    shots = split_shots(video)
    assert [len(s) for s in shots] == [8, 3, 4]


def test_evaluate_json(video, capsys):
    rc = main(["evaluate", "--video", str(video), "--engine", "landmarks", "--json"])
    assert rc == 0
    out = capsys.readouterr().out
    summary = json.loads(out.strip().splitlines()[-1])
    assert {"l1", "akd", "mkr", "frames", "shots", "engine", "aed", "akd_landmarks", "crop"} <= set(summary)
    assert summary["engine"] == "landmarks"
    assert summary["shots"] == 2  # the grey card has no face
    assert summary["frames"] == 12
    assert 0.0 <= summary["l1"] < 0.06
    assert summary["akd"] is not None and summary["akd"] < 6.0
    assert summary["mkr"] == 0.0
    assert summary["aed"] is None
    assert "AED" in out and "identity network" in out


def test_evaluate_no_crop(tmp_path, capsys):
    from avatarify_app.tracking import align_portrait

    crop = align_portrait(_portrait()).image
    frames = [crop] * 2 + [cv2.warpAffine(crop, cv2.getRotationMatrix2D((128, 128), 4, 1.0), (256, 256),
                                          borderMode=cv2.BORDER_REPLICATE)] * 2
    video = _write(tmp_path / "crops.mp4", frames)
    rc = main(["evaluate", "--video", str(video), "--engine", "landmarks", "--no-crop",
               "--no-landmark-metrics", "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["frames"] == 4 and summary["crop"] == "none"
    assert summary["akd"] is None and summary["l1"] < 0.03


def test_bench_landmarks_json(video, capsys):
    rc = main(["bench", "--engine", "landmarks", "--video", str(video), "--frames", "6", "--warmup", "2", "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["engine"] == "landmarks" and summary["frames"] == 6
    assert set(summary["stages_ms"]) == {"tracking", "engine"}
    assert summary["fps"] > 0 and summary["live_fps"] < summary["fps"]


def test_bench_generates_a_clip_without_the_demo_video(monkeypatch):
    from avatarify_app.config import EngineConfig
    from avatarify_app.offline import bench

    monkeypatch.setattr(bench, "DEMO_CLIP", Path("/nonexistent/driving.mp4"))
    s = bench.measure(EngineConfig(name="landmarks"), frames=4, warmup=1).summary()
    assert s["frames"] == 4 and s["video"].startswith("generated") and s["faces"] >= 4


def test_evaluate_with_a_broken_checkpoint_fails_before_tracking(video, tmp_path, capsys, monkeypatch):
    """The engine (and its checkpoint) is checked first: no tracker is built, no frame read."""
    import avatarify_app.offline.reconstruction as reconstruction
    import avatarify_app.tracking

    built = []

    class NoTracker:
        def __init__(self, *args, **kwargs):
            built.append("tracker")
            raise AssertionError("the video was tracked before the checkpoint was checked")

    def no_frames(*_args, **_kwargs):
        built.append("frames")
        raise AssertionError("the video was read before the checkpoint was checked")

    monkeypatch.setattr(avatarify_app.tracking, "StreamTracker", NoTracker)
    monkeypatch.setattr(reconstruction, "iter_video", no_frames)
    bad = tmp_path / "vox-cpk.pth.tar"
    bad.write_bytes(b"")
    rc = main(["evaluate", "--video", str(video), "--engine", "fomm", "--checkpoint", str(bad)])
    assert rc == 2
    assert bad.name in capsys.readouterr().err
    assert built == []


def test_evaluate_cuts_off_takes_the_video_as_one_shot(video, capsys):
    rc = main(["evaluate", "--video", str(video), "--engine", "landmarks", "--no-landmark-metrics",
               "--cuts", "off", "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # One shot from the first frame: the grey card and the portrait after it are part of it
    # (the grey card has no face: those frames are left out of the score).
    assert summary["shots"] == 1 and summary["cuts"] == "off"
    assert summary["frames"] == 12


def test_evaluate_reports_a_missing_video_before_loading_an_engine(tmp_path, capsys, monkeypatch):
    import avatarify_app.engines

    def refuse(*_args, **_kwargs):
        raise AssertionError("an engine was built for a video that does not exist")

    monkeypatch.setattr(avatarify_app.engines, "create_engine", refuse)
    assert main(["evaluate", "--video", str(tmp_path / "nope.mp4"), "--engine", "landmarks"]) == 2
    assert "Video not found" in capsys.readouterr().err
