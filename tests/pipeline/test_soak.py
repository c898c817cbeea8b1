"""Soak: >= 5,000 frames through a Session, memory flat, no thread left behind.

The default run uses the fast fakes (tracker and engine) so it stays well under 40 s on a
2-core machine; the pipeline's own parts (video source, slot, threads, stats, sinks) are the
real ones. scripts/soak_session.py runs the same soak with the real tracker and engine.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from live_fakes import Fakes, coded_frame, write_coded_video

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "soak_session.py"


def load_script():
    spec = importlib.util.spec_from_file_location("soak_session", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_soak_5000_frames(tmp_path):
    video = tmp_path / "loop.avi"
    write_coded_video(video, 100, size=(160, 120))
    fakes = Fakes(coded=True)
    wiring, engines = fakes.wiring(), fakes.engines
    result = load_script().soak(video, 5000, avatar=coded_frame(999), warmup=500, **wiring)
    assert result["frames"] >= 5000
    assert result["statuses"].get("ok", 0) >= 4900
    assert result["rss_growth_mb"] < 50, result
    assert result["threads_left"] == []
    assert result["dropped"] == 0  # unpaced file: lossless hand-over
    assert not result["errors"]
    assert engines[0].state["closed"]


@pytest.mark.soak
def test_soak_real_engine(media_dir):
    result = load_script().soak(media_dir / "Megamind.avi", 5000, avatar=media_dir / "mona.jpg",
                                report_every=1000)
    assert result["rss_growth_mb"] < 50 and result["threads_left"] == []
