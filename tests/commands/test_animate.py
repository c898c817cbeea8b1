"""`animate` end to end: a real photo, a small generated driving video with a sine-tone
soundtrack (made by imageio-ffmpeg's ffmpeg), written, then read back."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

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
