"""`animate`, `bench` and `live` with --engine liveportrait on tiny seeded weights in the
released folder layout (passed with --checkpoint and --model-config)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from avatarify_app.cli import main
from avatarify_app.engines.liveportrait import engine as engine_module
from avatarify_app.frames import load_image
from avatarify_app.paths import AVATARS_DIR
from avatarify_app.pipeline.video import read_video

AVATAR = AVATARS_DIR / "mona_lisa.png"
N_FRAMES = 5


@pytest.fixture
def tiny_args(tiny_folder, monkeypatch):
    monkeypatch.setattr(engine_module, "INPUT_SIZE", 64)
    folder, config = tiny_folder
    return ["--engine", "liveportrait", "--device", "cpu", "--checkpoint", str(folder), "--model-config", str(config)]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A short 320x240 clip of the astronaut turning a little."""
    import imageio_ffmpeg

    path = tmp_path_factory.mktemp("lp_clip") / "driving.mp4"
    face = cv2.resize(load_image(AVATARS_DIR / "astronaut.png"), (240, 240), interpolation=cv2.INTER_AREA)
    base = cv2.copyMakeBorder(face, 0, 0, 40, 40, cv2.BORDER_REPLICATE)
    writer = imageio_ffmpeg.write_frames(str(path), (320, 240), fps=10, quality=9, macro_block_size=1,
                                         ffmpeg_log_level="error")
    writer.send(None)
    for i in range(N_FRAMES):
        m = cv2.getRotationMatrix2D((160, 120), 8 * np.sin(i / 2), 1.0)
        writer.send(np.ascontiguousarray(cv2.warpAffine(base, m, (320, 240), borderMode=cv2.BORDER_REPLICATE)))
    writer.close()
    return path


def test_animate(tmp_path, tiny_args, clip):
    out = tmp_path / "out.mp4"
    assert main(["animate", "--source", str(AVATAR), "--driving", str(clip), "--output", str(out), *tiny_args]) == 0
    frames, _ = read_video(out)
    frames = list(frames)
    portrait = load_image(AVATAR)
    assert len(frames) == N_FRAMES
    assert frames[0].shape[:2] == (portrait.shape[0] - portrait.shape[0] % 2, portrait.shape[1] - portrait.shape[1] % 2)
    # the face moves with the driver; the far corner of the portrait stays
    assert np.abs(frames[2].astype(int) - frames[0]).mean() > 0.1
    assert np.abs(frames[2][:8, :8].astype(int) - frames[0][:8, :8]).mean() < 3


def test_bench_json(tiny_args, clip, capsys):
    assert main(["bench", *tiny_args, "--video", str(clip), "--frames", "2", "--warmup", "1", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["engine"] == "liveportrait" and summary["frames"] == 2 and summary["ms_per_frame"] > 0
    assert {"motion", "stitching", "warp", "decode", "paste"} <= set(summary["stages_ms"])
    assert summary["backend"] == "fast" and summary["half"] is False  # auto: the fast runtime on a CPU in float32


def test_live_records(tmp_path, tiny_args, clip, capsys):
    rec = tmp_path / "live.mp4"
    assert main(["live", "--headless", *tiny_args, "--camera", str(clip), "--avatar", str(AVATAR),
                 "--frames", "4", "--record", str(rec), "--no-vcam", "--stats-every", "0", "--json",
                 "--eye-open", "0.3", "--animation-region", "exp"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["frames"] >= 4 and report["recording"]["frames"] >= 1
    frames, _ = read_video(rec)
    assert next(iter(frames)).shape[2] == 3


@pytest.mark.slow
def test_cli_bench_full_size_random_weights_json():
    """No weights on the machine: the released sizes with random weights, one driving frame."""
    root = Path(__file__).resolve().parents[3]
    proc = subprocess.run([sys.executable, "main.py", "bench", "--engine", "liveportrait", "--frames", "1",
                           "--warmup", "1", "--device", "cpu", "--json"],
                          cwd=root, capture_output=True, text=True, timeout=900, check=True)
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    assert data["engine"] == "liveportrait" and data["ms_per_frame"] > 0


def test_evaluate_json(tiny_args, clip, capsys):
    assert main(["evaluate", "--video", str(clip), *tiny_args, "--max-frames", "3", "--no-landmark-metrics",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["frames"] >= 2 and report["l1"] is not None and report["l1"] >= 0
