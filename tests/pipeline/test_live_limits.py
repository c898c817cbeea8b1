"""`live --headless` on the shipped demo clip: `--frames N` records exactly N frames, and what
the app noticed about the portrait is printed."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from avatarify_app.cli import main
from avatarify_app.frames import load_image
from avatarify_app.paths import AVATARS_DIR, PROJECT_ROOT

pytest.importorskip("avatarify_app.engines.landmarks")

DEMO = PROJECT_ROOT / "assets" / "demo" / "driving.mp4"


def frames_in(path) -> int:
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(path), input_params=["-hide_banner"])
    next(gen)
    n = sum(1 for _ in gen)
    gen.close()
    return n


@pytest.mark.parametrize("n", [12, 40])
def test_frames_n_records_exactly_n(tmp_path, capsys, n):
    out = tmp_path / "avatar.mp4"
    code = main(["live", "--headless", "--camera", str(DEMO), "--avatar", str(AVATARS_DIR / "astronaut.png"),
                 "--engine", "landmarks", "--no-vcam", "--record", str(out), "--frames", str(n),
                 "--stats-every", "0", "--json"])
    text = capsys.readouterr().out
    assert code == 0, text
    summary = json.loads(text.strip().splitlines()[-1])
    assert summary["stopped_by"] == "frames" and summary["engine"] == "landmarks"
    assert summary["frames"] == n and summary["recording"]["frames"] == n
    assert frames_in(out) == n


def test_notes_about_the_portrait_are_printed(tmp_path, capsys):
    rgba = np.dstack([load_image(AVATARS_DIR / "astronaut.png"), np.full((256, 256), 255, np.uint8)])
    rgba[:30, :, 3] = 0
    avatar = tmp_path / "cutout.png"
    cv2.imwrite(str(avatar), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    code = main(["live", "--headless", "--camera", str(DEMO), "--avatar", str(avatar), "--engine", "landmarks",
                 "--no-vcam", "--frames", "3", "--stats-every", "0"])
    text = capsys.readouterr().out
    assert code == 0, text
    notes = [line for line in text.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and "cutout.png is partly transparent" in notes[0]
