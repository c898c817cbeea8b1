"""`bench --engine fomm`: offline.bench.measure on a tiny model (fast) and the real CLI on vox-256 (slow)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fomm_helpers import tiny_params

from avatarify_app.config import EngineConfig
from avatarify_app.offline import bench

TINY = tiny_params()


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_measure_reports_the_engines_stages(monkeypatch, backend):
    import avatarify_app.models.fomm as fomm_models

    real = fomm_models.load_model_params
    monkeypatch.setattr(fomm_models, "load_model_params", lambda source=None: real(TINY if source is None else source))
    config = EngineConfig(name="fomm", device="cpu", options={"backend": backend})
    result = bench.measure(config, frames=3, warmup=1)
    summary = result.summary()
    assert set(summary["stages_ms"]) == {"tracking", "engine", "keypoints", "dense_motion", "generator"}
    assert summary["frames"] == 3 and summary["fps"] > 0
    assert summary["backend"] == backend and summary["engine"] == "fomm"
    # Frame by frame, the engine's own stages lie inside its time for that frame.
    st = result.stages
    for i, total in enumerate(st["engine"]):
        assert st["keypoints"][i] + st["dense_motion"][i] + st["generator"][i] <= total
    assert summary["live_ms_per_frame"] >= summary["ms_per_frame"]


@pytest.mark.slow
def test_cli_bench_vox256_json():
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "main.py", "bench", "--engine", "fomm", "--frames", "2",
                           "--warmup", "1", "--device", "cpu", "--json"],
                          cwd=root, capture_output=True, text=True, timeout=600, check=True)
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    assert data["ms_per_frame"] > 0 and data["fps"] > 0
