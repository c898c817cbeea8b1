"""`animate` with a file that is not a video or an output it cannot write: our one message,
none of ffmpeg's banner or log (issue 11, item 18)."""

from __future__ import annotations

import numpy as np
import pytest

from avatarify_app.cli import main
from avatarify_app.frames import load_image
from avatarify_app.paths import AVATARS_DIR

ASTRONAUT = AVATARS_DIR / "astronaut.png"
FFMPEG_NOISE = ("ffmpeg version", "configuration:", "libavcodec", "@ 0x", "FFMPEG COMMAND", "FFMPEG STDERR",
                "Broken pipe", "Traceback")


def _clip(path, n: int = 4):
    import imageio_ffmpeg

    face = load_image(ASTRONAUT)
    writer = imageio_ffmpeg.write_frames(str(path), (256, 256), fps=10, macro_block_size=1, ffmpeg_log_level="error")
    writer.send(None)
    for i in range(n):
        writer.send(np.ascontiguousarray(np.roll(face, i, axis=1)))
    writer.close()
    return path


def test_a_driving_file_that_is_not_a_video(tmp_path, capfd):
    junk = tmp_path / "junk.mp4"
    junk.write_text("not a video")
    code = main(["animate", "--source", str(ASTRONAUT), "--driving", str(junk), "--output",
                 str(tmp_path / "out.mp4"), "--engine", "landmarks", "--no-crop"])
    err = capfd.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    first = next(i for i, line in enumerate(lines) if line.startswith("error: "))  # after mediapipe's own log
    assert lines[first].startswith("error: Cannot read junk.mp4 as a video (ffmpeg: ")
    assert lines[first].endswith(").") and lines[first + 1:] == ["  hint: Use an .mp4/.avi/.mov file."]
    assert not any(noise in err for noise in FFMPEG_NOISE), err


LONG = "a" * 248 + ".mp4"  # its partial file's name (aaa.partial.mp4) is more than a file system takes


@pytest.mark.parametrize(("target", "says"), [
    (lambda d: d / LONG, "File name too long"),
    (lambda d: d, "is a folder."),
    (lambda d: d / "plain.txt" / "out.mp4", "Cannot create the folder for out.mp4"),
])
def test_an_output_it_cannot_write(tmp_path, capfd, target, says):
    driving = _clip(tmp_path / "driving.mp4")
    out_dir = tmp_path / "outputs"
    out_dir.mkdir()
    (out_dir / "plain.txt").write_text("a file, not a folder")
    code = main(["animate", "--source", str(ASTRONAUT), "--driving", str(driving), "--output",
                 str(target(out_dir)), "--engine", "landmarks", "--no-crop"])
    err = capfd.readouterr().err
    assert code == 2
    assert err.count("error: ") == 1 and says in err and "  hint: " in err
    assert not any(noise in err for noise in FFMPEG_NOISE), err
    assert sorted(p.name for p in out_dir.iterdir()) == ["plain.txt"]  # nothing half-written left behind
