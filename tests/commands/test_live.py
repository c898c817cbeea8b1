"""`live --headless` and the desktop app stopped by signals, as a service manager or a terminal
stops them (real subprocesses), and `live --record` never replacing a file by surprise."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from live_fakes import write_mp4

from avatarify_app.cli import main
from avatarify_app.frames import load_image
from avatarify_app.paths import AVATARS_DIR
from avatarify_app.pipeline.video import iter_video, partial_path

ROOT = Path(__file__).resolve().parents[2]
AVATAR = AVATARS_DIR / "mona_lisa.png"
DRIVER = AVATARS_DIR / "astronaut.png"


def driving_video(path: Path, n: int = 20) -> Path:
    """The astronaut crop nodding and turning, 256x256 at 10 fps."""
    if not DRIVER.is_file() or not AVATAR.is_file():
        pytest.skip("the shipped avatars are not here")
    crop = load_image(DRIVER)
    frames = []
    for i in range(n):
        m = cv2.getRotationMatrix2D((128, 128), 8 * np.sin(i / 3), 1.0)
        m[:, 2] += (0, 4 * np.sin(i / 2))
        frames.append(cv2.warpAffine(crop, m, (256, 256), borderMode=cv2.BORDER_REPLICATE))
    return write_mp4(path, frames, 10.0)


class Child:
    """``python main.py ARGS`` with its output collected line by line on a thread."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), *args], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(s, d), daemon=True)
                         for s, d in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for t in self._readers:
            t.start()

    @staticmethod
    def _read(stream, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    def wait_for(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if predicate():
                return True
            time.sleep(0.1)
        return predicate()

    def stop(self, sig: int, timeout: float) -> tuple[int, float]:
        """Send ``sig``; (exit code, seconds until the process ended)."""
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        for t in self._readers:
            t.join(5)
        return code, time.monotonic() - t0

    def text(self) -> str:
        return "\n".join(self.out) + "\n--- stderr ---\n" + "\n".join(self.err[-30:])


def frames_counted(lines: list[str]) -> int:
    counts = [int(m.group(1)) for line in lines if (m := re.search(r"\| frames (\d+) dropped", line))]
    return max(counts, default=0)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_live_headless_finishes_the_recording_when_stopped_by_a_signal(tmp_path, sig):
    """SIGTERM (a service manager's stop) and SIGINT (Ctrl-C) take the same way out: the
    recording is a complete MP4 under its name holding every frame processed, promptly, even
    when the signal comes twice."""
    video = driving_video(tmp_path / "drive.mp4")
    out = tmp_path / "rec.mp4"
    child = Child(["live", "--headless", "--camera", str(video), "--loop", "--no-vcam", "--record", str(out),
                   "--avatar", str(AVATAR), "--engine", "landmarks", "--stats-every", "0.3", "--json"])
    try:
        assert child.wait_for(lambda: frames_counted(child.out) >= 10, timeout=120), child.text()
    except BaseException:
        child.stop(signal.SIGKILL, 10)
        raise
    child.proc.send_signal(sig)
    time.sleep(0.05)
    child.proc.send_signal(sig)  # a second signal during the shutdown
    # ... and a third once the report is out, while the process exits.
    child.wait_for(lambda: any('"stopped_by"' in line for line in child.out), timeout=30)
    code, seconds = child.stop(sig, timeout=30)
    assert code == (143 if sig == signal.SIGTERM else 130), child.text()
    assert seconds < 10, f"took {seconds:.1f} s to stop"
    summary = json.loads(child.out[-1])
    assert summary["stopped_by"] == ("sigterm" if sig == signal.SIGTERM else "ctrl-c")
    written = summary["recording"]["frames"]
    assert written >= 10
    assert out.is_file() and not partial_path(out).exists()
    frames = list(iter_video(out))
    assert len(frames) == written
    assert frames[-1].shape == (256, 256, 3)


def test_gui_quits_cleanly_on_sigterm(tmp_path):
    """The desktop app, offscreen, playing a video: SIGTERM closes it through its own
    shutdown (exit code 0), within a few seconds."""
    pytest.importorskip("PySide6")
    video = driving_video(tmp_path / "drive.mp4", n=10)
    child = Child(["gui", "--camera", str(video), "--avatar", str(AVATAR), "--no-vcam", "--engine", "landmarks"],
                  env={"QT_QPA_PLATFORM": "offscreen"})
    # The face tracker announces its graph once the session runs (or give it 60 s to get there).
    child.wait_for(lambda: any("XNNPACK" in line for line in child.err), timeout=60)
    assert child.proc.poll() is None, child.text()
    time.sleep(2.0)
    code, seconds = child.stop(signal.SIGTERM, timeout=30)
    assert code == 0, child.text()
    assert seconds < 10, f"took {seconds:.1f} s to quit"
    assert not any("Traceback" in line for line in child.err), child.text()


def test_signal_handlers_only_set_the_stop_event_and_are_restored():
    from avatarify_app.commands.live import stop_on_signals

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    stop, received = threading.Event(), []
    with stop_on_signals(stop, received):
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(2.0)
        os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt in the middle of anything
        time.sleep(0.05)
    assert received == ["SIGTERM", "SIGINT"]
    assert {s: signal.getsignal(s) for s in before} == before


# ----------------------------------------------------------------------------- --record and --force
def test_live_refuses_to_replace_an_existing_recording(tmp_path, capsys, monkeypatch):
    import avatarify_app.pipeline as pipeline

    def refuse(*_args, **_kwargs):
        raise AssertionError("the camera was opened although the command should have refused first")

    monkeypatch.setattr(pipeline, "open_source", refuse)
    out = tmp_path / "rec.mp4"
    out.write_bytes(b"yesterday's call")
    rc = main(["live", "--headless", "--camera", "0", "--no-vcam", "--record", str(out), "--avatar", str(AVATAR)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "exists already" in err and "--force" in err
    assert out.read_bytes() == b"yesterday's call"


def test_live_force_replaces_the_recording(tmp_path, capsys):
    video = driving_video(tmp_path / "drive.mp4", n=6)
    out = tmp_path / "rec.mp4"
    out.write_bytes(b"yesterday's call")
    rc = main(["live", "--headless", "--camera", str(video), "--no-vcam", "--record", str(out), "--force",
               "--avatar", str(AVATAR), "--engine", "landmarks", "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["stopped_by"] == "end of video"
    assert len(list(iter_video(out))) == summary["recording"]["frames"] == 6


def test_force_is_refused_without_headless(capsys):
    rc = main(["live", "--force"])
    assert rc == 2
    assert "--force" in capsys.readouterr().err
