"""A recording ffmpeg refuses: one line saying why, reported once, nothing of ffmpeg's on the terminal."""

from __future__ import annotations

import numpy as np
import pytest

from avatarify_app.errors import SinkError
from avatarify_app.pipeline.sinks import RecorderSink
from avatarify_app.pipeline.video import ffmpeg_with_x264


def test_ffmpeg_reason_keeps_one_line_without_banner_or_prefixes():
    from avatarify_app.pipeline.video import ffmpeg_reason

    log = ("ffmpeg version n7.1 Copyright (c) 2000-2024 the FFmpeg developers\n  built with gcc 14\n"
           "  configuration: --enable-gpl\n  libavutil      59. 39.100 / 59. 39.100\n"
           "[AVFormatContext @ 0x5581af510840] Unable to choose an output format for 'x.xyz'\n"
           "[out#0 @ 0x5581af510640] Error initializing the muxer for x.xyz: Invalid argument\n"
           "Error opening output files: Invalid argument\n")
    assert ffmpeg_reason(log) == "Unable to choose an output format for 'x.xyz'"
    assert ffmpeg_reason(log, first=False) == "Error opening output files: Invalid argument"
    assert ffmpeg_reason("ffmpeg version 7\n\n") == "no message from ffmpeg"


@pytest.mark.skipif(ffmpeg_with_x264() is None, reason="imageio-ffmpeg's ffmpeg with libx264 is not installed")
def test_a_recording_ffmpeg_refuses(tmp_path, capfd):
    name = "a" * 248 + ".mp4"  # its partial file's name is more than a file system takes
    sink = RecorderSink(tmp_path / name, fps=10, size=(64, 48), prefer=("ffmpeg",))
    frame = np.zeros((48, 64, 3), np.uint8)
    with pytest.raises(SinkError) as info:
        for i in range(50):  # the pipe breaks once ffmpeg has given up
            sink.send(frame, i / 10)
    err = info.value
    assert err.message.startswith(f"Cannot write {name}: ") and "File name too long" in err.message
    assert "\n" not in err.message and "@ 0x" not in err.message and ".mp4" in err.hint
    sink.close()  # already reported: closing does not raise it again
    assert capfd.readouterr().err == ""
    assert list(tmp_path.iterdir()) == []
