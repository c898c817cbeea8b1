"""`doctor` on this machine: every check prints, the virtual camera line carries the fix."""

from __future__ import annotations

import pyvirtualcam

from avatarify_app.cli import main


def test_doctor_reports_every_check(capsys):
    code = main(["doctor", "--max-camera-index", "2"])
    out = capsys.readouterr().out
    assert code in (0, 1)
    for what in ("python", "torch", "device", "mediapipe", "qt platform", "cameras", "virtual camera",
                 "engine fomm", "engine landmarks", "engine auto",
                 "onnxruntime", "mp4 encoder"):
        assert f"] {what}" in out, what
    assert "face models present" in out or "face models missing" in out
    assert "cpu" in out or "cuda" in out or "mps" in out
    if "[warn] virtual camera" in out and "v4l2loopback" in pyvirtualcam.camera.BACKENDS:
        assert "sudo modprobe v4l2loopback devices=1 exclusive_caps=1" in out
    assert out.rstrip().splitlines()[-1].startswith(("ready", "cannot run"))


def test_doctor_can_skip_cameras(capsys):
    main(["doctor", "--no-cameras"])
    assert "not probed" in capsys.readouterr().out


def test_verbosity_flags_anywhere():
    from avatarify_app.cli import split_verbosity

    assert split_verbosity(["-v", "gui", "--camera", "x"]) == (["gui", "--camera", "x"], 1)
    assert split_verbosity(["gui", "-vv"]) == (["gui"], 2)
    assert split_verbosity(["live", "--verbose", "--headless", "--", "-v"]) == (["live", "--headless", "--", "-v"], 1)
    assert split_verbosity(["--camera", "-vid.mp4"]) == (["--camera", "-vid.mp4"], 0)
