"""`animate` end to end: a real photo, a small generated driving video with a sine-tone
soundtrack (made by imageio-ffmpeg's ffmpeg), written, then read back."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from live_fakes import write_mp4

from avatarify_app.cli import main
from avatarify_app.frames import save_image
from avatarify_app.paths import AVATARS_DIR
from avatarify_app.pipeline.video import probe_video, read_video

N_FRAMES = 10
FPS = 10.0


def _portrait() -> np.ndarray:
    from avatarify_app.frames import load_image

    shipped = AVATARS_DIR / "astronaut.png"
    if shipped.is_file():
        return load_image(shipped)
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def make_driving_video(path: Path, *, audio: bool, crop: bool = False) -> Path:
    """A face nodding and shifting; 320x240 (or a 256 aligned crop), N_FRAMES at FPS."""
    import imageio_ffmpeg

    image = _portrait()
    if crop:
        from avatarify_app.tracking import align_portrait

        base, size = align_portrait(image).image, (256, 256)
    else:
        base, size = cv2.resize(image, (240, 240), interpolation=cv2.INTER_AREA), (320, 240)
        base = cv2.copyMakeBorder(base, 0, 0, 40, 40, cv2.BORDER_REPLICATE)
    frames = []
    for i in range(N_FRAMES):
        m = cv2.getRotationMatrix2D((size[0] / 2, size[1] / 2), 6 * np.sin(i / 3), 1.0)
        m[:, 2] += (3 * np.sin(i / 2), 2 * np.cos(i / 2))
        frames.append(cv2.warpAffine(base, m, size, borderMode=cv2.BORDER_REPLICATE))
    tone = None
    if audio:
        tone = path.with_suffix(".wav")
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi",
                        "-i", f"sine=frequency=440:duration={N_FRAMES / FPS}", str(tone)], check=True)
    writer = imageio_ffmpeg.write_frames(str(path), size, fps=FPS, quality=9, macro_block_size=1,
                                         audio_path=str(tone) if tone else None,
                                         audio_codec="aac" if tone else None, ffmpeg_log_level="error")
    writer.send(None)
    for f in frames:
        writer.send(np.ascontiguousarray(f))
    writer.close()
    return path


def _read_back(path: Path) -> tuple[list[np.ndarray], dict]:
    frames, meta = read_video(path)
    return list(frames), meta


@pytest.fixture(scope="module")
def portrait_file(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("animate")
    path = d / "portrait.png"
    save_image(path, _portrait())
    return path


def test_animate_full_portrait_keeps_frames_size_and_audio(tmp_path, portrait_file, capsys):
    driving = make_driving_video(tmp_path / "driving.mp4", audio=True)
    assert probe_video(driving).get("audio_codec"), "the test video should carry a sine tone"
    out = tmp_path / "out.mp4"
    rc = main(["animate", "--source", str(portrait_file), "--driving", str(driving), "--output", str(out),
               "--engine", "landmarks"])
    assert rc == 0
    frames, meta = _read_back(out)
    source = _portrait()
    assert len(frames) == N_FRAMES
    assert frames[0].shape == (source.shape[0] - source.shape[0] % 2, source.shape[1] - source.shape[1] % 2, 3)
    assert meta.get("audio_codec"), "the driving video's audio was not kept"
    assert abs(float(meta["fps"]) - FPS) < 0.1
    assert "with the driving video's audio" in capsys.readouterr().out
    # The animated face moves: frames differ from each other, the far corners do not.
    assert np.abs(frames[3].astype(int) - frames[0].astype(int)).mean() > 0.3
    corner = (slice(0, 8), slice(0, 8))
    assert np.abs(frames[3][corner].astype(int) - frames[0][corner].astype(int)).mean() < 6


def test_animate_no_crop_find_best_frame_without_audio(tmp_path):
    from avatarify_app.tracking import align_portrait

    driving = make_driving_video(tmp_path / "crops.mp4", audio=False, crop=True)
    src = tmp_path / "src.png"
    save_image(src, align_portrait(_portrait()).image)
    out = tmp_path / "out.mp4"
    rc = main(["animate", "--source", str(src), "--driving", str(driving), "--output", str(out),
               "--engine", "landmarks", "--no-crop", "--find-best-frame", "--absolute"])
    assert rc == 0
    frames, meta = _read_back(out)
    assert len(frames) == N_FRAMES
    assert frames[0].shape == (256, 256, 3)
    assert not meta.get("audio_codec")


def test_animate_reports_a_missing_video(tmp_path, portrait_file, capsys):
    rc = main(["animate", "--source", str(portrait_file), "--driving", str(tmp_path / "nope.mp4"),
               "--output", str(tmp_path / "o.mp4"), "--engine", "landmarks"])
    assert rc == 2
    assert "Video not found" in capsys.readouterr().err


def test_animate_restarts_the_reference_at_each_scene_cut(tmp_path, portrait_file, capsys):
    """Two shots: the portrait nodding, then a cut to the same face tilted and framed anew.
    The avatar starts the second shot from its own pose, as it started the first."""
    import imageio_ffmpeg

    image = _portrait()
    base = cv2.copyMakeBorder(cv2.resize(image, (240, 240), interpolation=cv2.INTER_AREA), 0, 0, 40, 40,
                              cv2.BORDER_REPLICATE)
    frames = []
    for i in range(6):
        m = cv2.getRotationMatrix2D((160, 120), 3 * np.sin(i / 2), 1.0)
        frames.append(cv2.warpAffine(base, m, (320, 240), borderMode=cv2.BORDER_REPLICATE))
    for i in range(6):
        m = cv2.getRotationMatrix2D((160, 110), 18 + i, 0.85)
        m[:, 2] += (25, 10)
        frames.append(cv2.warpAffine(base, m, (320, 240), borderMode=cv2.BORDER_REPLICATE))
    driving = tmp_path / "cut.mp4"
    writer = imageio_ffmpeg.write_frames(str(driving), (320, 240), fps=FPS, quality=9, macro_block_size=1,
                                         ffmpeg_log_level="error")
    writer.send(None)
    for f in frames:
        writer.send(np.ascontiguousarray(f))
    writer.close()
    out = tmp_path / "out.mp4"
    rc = main(["animate", "--source", str(portrait_file), "--driving", str(driving), "--output", str(out),
               "--engine", "landmarks"])
    assert rc == 0
    assert "2 shot(s), reference frame(s) 0, 6" in capsys.readouterr().out
    result, _ = _read_back(out)
    assert len(result) == 12

    def diff(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())

    # The first frame of each shot is the avatar at rest; later frames of the tilted shot move
    # relative to it (a little), not by the 18 degrees between the shots.
    assert diff(result[6], result[0]) < 1.5
    assert diff(result[11], result[0]) < 0.5 * diff(cv2.warpAffine(result[0], cv2.getRotationMatrix2D(
        (result[0].shape[1] / 2, result[0].shape[0] / 2), 18, 1.0), result[0].shape[1::-1]), result[0])


# ----------------------------------------------------------------------------- scene cuts (issue 11, item 1)
def _fast_head_motion(crop: np.ndarray, n: int = 40) -> list[np.ndarray]:
    """A head turning 24 degrees, zooming 16 % and moving 20 px, smoothly, in ``n`` frames."""
    out = []
    for i in range(n):
        t = i / (n - 1)
        m = cv2.getRotationMatrix2D((128, 128), 24 * np.sin(2 * np.pi * t), 1 + 0.16 * np.sin(3 * np.pi * t))
        m[:, 2] += (20 * np.sin(1.5 * np.pi * t), 20 * np.sin(2.5 * np.pi * t))
        out.append(cv2.warpAffine(crop, m, (256, 256), borderMode=cv2.BORDER_REPLICATE))
    return out


def test_animate_follows_fast_head_motion_as_one_shot(tmp_path, capsys):
    """Self-reenactment: the portrait's own crop driven by itself moving fast and smoothly. Cut
    into pieces (as the thumbnail-difference detector did), each piece restarted from the rest
    pose and the output barely moved (L1 0.178 against 0.183 for the still source)."""
    from avatarify_app.tracking import align_portrait

    crop = align_portrait(_portrait()).image
    frames = _fast_head_motion(crop)
    driving = write_mp4(tmp_path / "fast.mp4", frames)
    src = tmp_path / "src.png"
    save_image(src, crop)
    out = tmp_path / "out.mp4"
    assert main(["animate", "--source", str(src), "--driving", str(driving), "--output", str(out),
                 "--engine", "landmarks", "--no-crop"]) == 0
    assert "1 shot(s), reference frame(s) 0)" in capsys.readouterr().out
    result, _ = _read_back(out)
    real, _ = _read_back(driving)

    def l1(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean() / 255)

    animated = np.mean([l1(a, b) for a, b in zip(result, real, strict=True)])
    still = np.mean([l1(real[0], b) for b in real])
    assert animated < 0.5 * still, (animated, still)


def test_animate_cuts_off_takes_the_video_as_one_shot(tmp_path, portrait_file, capsys):
    """The two-shot clip of the scene-cut test above, with --cuts off."""
    image = _portrait()
    base = cv2.copyMakeBorder(cv2.resize(image, (240, 240), interpolation=cv2.INTER_AREA), 0, 0, 40, 40,
                              cv2.BORDER_REPLICATE)
    frames = [base] * 6 + [cv2.warpAffine(base, cv2.getRotationMatrix2D((160, 110), 18, 0.85), (320, 240),
                                          borderMode=cv2.BORDER_REPLICATE)] * 6
    driving = write_mp4(tmp_path / "cut.mp4", frames, fps=FPS)
    out = tmp_path / "out.mp4"
    assert main(["animate", "--source", str(portrait_file), "--driving", str(driving), "--output", str(out),
                 "--engine", "landmarks", "--cuts", "off"]) == 0
    assert "1 shot(s), reference frame(s) 0)" in capsys.readouterr().out


# ----------------------------------------------------------------------------- existing output (item 6)
@pytest.fixture
def no_engine(monkeypatch):
    """Fails the test if an engine is built or a video is tracked."""
    import avatarify_app.engines
    import avatarify_app.offline.animation as animation

    def refuse(*_args, **_kwargs):
        raise AssertionError("work started although the command should have refused first")

    monkeypatch.setattr(avatarify_app.engines, "create_engine", refuse)
    monkeypatch.setattr(animation, "track_video", refuse)


def test_animate_refuses_to_replace_an_existing_output(tmp_path, portrait_file, capsys, no_engine):
    driving = make_driving_video(tmp_path / "driving.mp4", audio=False)
    out = tmp_path / "out.mp4"
    out.write_bytes(b"an earlier result")
    rc = main(["animate", "--source", str(portrait_file), "--driving", str(driving), "--output", str(out),
               "--engine", "landmarks"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "exists already" in err and "--force" in err
    assert out.read_bytes() == b"an earlier result"
    assert not list(tmp_path.glob("*.partial*"))


@pytest.mark.parametrize("target", ["driving", "folder"])
def test_animate_never_writes_over_its_input_or_a_folder_even_with_force(tmp_path, portrait_file, capsys,
                                                                       no_engine, target):
    driving = make_driving_video(tmp_path / "driving.mp4", audio=False)
    before = driving.read_bytes()
    out = driving if target == "driving" else tmp_path
    rc = main(["animate", "--source", str(portrait_file), "--driving", str(driving), "--output", str(out),
               "--engine", "landmarks", "--force"])
    assert rc == 2
    assert ("also an input" if target == "driving" else "is a folder") in capsys.readouterr().err
    assert driving.read_bytes() == before


def test_animate_force_replaces_an_existing_output(tmp_path, portrait_file):
    driving = make_driving_video(tmp_path / "driving.mp4", audio=False)
    out = tmp_path / "out.mp4"
    out.write_bytes(b"an earlier result")
    rc = main(["animate", "--source", str(portrait_file), "--driving", str(driving), "--output", str(out),
               "--engine", "landmarks", "--force"])
    assert rc == 0
    frames, _ = _read_back(out)
    assert len(frames) == N_FRAMES


# ----------------------------------------------------------------------------- a bad checkpoint fails fast (item 7)
def test_animate_with_a_broken_checkpoint_fails_before_tracking(tmp_path, portrait_file, capsys, monkeypatch):
    import avatarify_app.offline.animation as animation

    def refuse(*_args, **_kwargs):
        raise AssertionError("the video was tracked before the checkpoint was checked")

    monkeypatch.setattr(animation, "track_video", refuse)
    bad = tmp_path / "vox-cpk.pth.tar"
    bad.write_bytes(b"<html>not a checkpoint</html>" * 10)
    driving = make_driving_video(tmp_path / "driving.mp4", audio=False)
    rc = main(["animate", "--source", str(portrait_file), "--driving", str(driving), "--output",
               str(tmp_path / "out.mp4"), "--engine", "fomm", "--checkpoint", str(bad)])
    assert rc == 2
    assert str(bad.name) in capsys.readouterr().err
    assert not (tmp_path / "out.mp4").exists()
