"""The commands as a user runs them (slow: each `serve` boots its own Ray):

    python main.py serve --engine landmarks --port PORT
    python main.py live --headless --engine remote --server http://127.0.0.1:PORT --camera VIDEO \\
        --avatar IMG --frames 90 --record OUT.mp4 --no-vcam

then the whole server process is killed mid-stream (SIGKILL, no goodbye) and started again."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from serve_helpers import free_port, needs_ray

from avatarify_app.paths import ASSETS_DIR, AVATARS_DIR, PROJECT_ROOT

pytestmark = [needs_ray, pytest.mark.slow]
MAIN = str(PROJECT_ROOT / "main.py")
# Not passed on: the command must keep Ray on loopback by itself (and find no cluster to join).
RAY_ENV = ("RAY_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_USAGE_STATS_ENABLED")


class ServeProcess:
    """`python main.py serve ...` in its own process group, on 127.0.0.1."""

    def __init__(self, port: int, *extra: str) -> None:
        self.port = port
        self.lines: list[str] = []
        self.proc = subprocess.Popen([sys.executable, MAIN, "serve", "--engine", "landmarks", "--port", str(port),
                                      "--num-cpus", "2", "--cpus-per-replica", "0.5", *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True, env={k: v for k, v in os.environ.items() if k not in RAY_ENV})
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line and self.proc.poll() is not None:
                break
            self.lines.append(line)
            if line.startswith("serving "):
                return
        self.kill()
        raise AssertionError("serve did not come up:\n" + "".join(self.lines))

    def processes(self):
        import psutil

        root = psutil.Process(self.proc.pid)
        return [root, *root.children(recursive=True)]

    def kill(self) -> None:
        """SIGKILL to the server and every process it started."""
        import psutil

        try:
            procs = self.processes()
        except psutil.NoSuchProcess:
            procs = []
        for proc in procs:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(procs, timeout=10)
        self.proc.wait(10)

    def stop(self) -> str:
        """Ctrl-C, as a user stops it; returns what it printed."""
        import psutil

        procs = self.processes()
        self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=120)
        _gone, alive = psutil.wait_procs(procs, timeout=20)
        assert not alive, f"left running after Ctrl-C: {[(p.pid, p.name()) for p in alive]}"
        return "".join(self.lines) + out


@pytest.fixture(scope="module")
def port():
    return free_port()


def test_live_headless_through_a_serve_process_records_90_animated_frames(port, tmp_path):
    from avatarify_app.pipeline.video import iter_video

    server = ServeProcess(port)
    try:
        assert f"at http://127.0.0.1:{port} | token: none" in server.lines[-1]
        out = tmp_path / "out.mp4"
        live = subprocess.run(
            [sys.executable, MAIN, "live", "--headless", "--engine", "remote", "--server", f"http://127.0.0.1:{port}",
             "--camera", str(ASSETS_DIR / "demo" / "driving.mp4"), "--avatar", str(AVATARS_DIR / "mona_lisa.png"),
             "--frames", "90", "--record", str(out), "--no-vcam", "--json"],
            capture_output=True, text=True, timeout=600, cwd=PROJECT_ROOT)
        assert live.returncode == 0, live.stdout + live.stderr
        summary = json.loads(live.stdout.strip().splitlines()[-1])
        assert summary["recording"]["frames"] == 90 and summary["device"].startswith("remote http://127.0.0.1")
        frames = list(iter_video(out))
        assert len(frames) == 90
        # Animated: the avatar moves (consecutive frames differ), and it is not the driving video.
        moving = [float(np.abs(a.astype(int) - b.astype(int)).mean()) for a, b in itertools.pairwise(frames)]
        assert sum(m > 0.3 for m in moving) > 45, moving
    finally:
        text = server.stop()
    assert "stopping" in text


def test_a_killed_server_is_reconnected_to_when_it_is_back(port, avatar_crop, driving_crops):
    from avatarify_app.engines.remote.client import RemoteEngine

    server = ServeProcess(port)
    engine = RemoteEngine(f"http://127.0.0.1:{port}", max_in_flight=2)
    try:
        engine.set_source(*avatar_crop)
        last = [engine.predict(*c) for c in driving_crops[:10]][-1]
        t_kill = time.monotonic()
        server.kill()
        while engine.status != "server lost, reconnecting" and time.monotonic() - t_kill < 5:
            last = engine.predict(*driving_crops[10])
            time.sleep(0.02)
        assert time.monotonic() - t_kill < 2.0, "the client did not notice within 2 s"
        last = engine.predict(*driving_crops[11])  # (a reply that came just before the kill may show once)
        for crop, _lms in driving_crops[12:16]:
            held = engine.predict(crop)
            assert np.array_equal(held, last)  # the last animated frame, never the face
            assert np.abs(held.astype(int) - crop.astype(int)).mean() > 10
        server = ServeProcess(port)  # back on the same port (a fresh server: no avatars)
        deadline = time.monotonic() + 60
        i = 12
        while time.monotonic() < deadline and not (engine.status == "connected" and engine.stats()["received"] > 12):
            engine.predict(*driving_crops[i % len(driving_crops)])
            i += 1
            time.sleep(0.02)
        stats = engine.stats()
        assert engine.status == "connected" and stats["uploads"] == 2 and stats["received"] > 12, stats
    finally:
        engine.close()
        if server.proc.poll() is None:
            server.stop()
