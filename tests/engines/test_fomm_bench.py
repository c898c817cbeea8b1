"""`bench --engine fomm`: measure() on a tiny model (fast) and the real CLI on vox-256 (slow)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

import avatarify_app.models as models
from avatarify_app.commands import bench_fomm

TINY = {
    "common_params": {"num_kp": 4, "num_channels": 3, "estimate_jacobian": True},
    "kp_detector_params": {"temperature": 0.1, "block_expansion": 4, "max_features": 16,
                           "scale_factor": 0.25, "num_blocks": 3},
    "generator_params": {"block_expansion": 8, "max_features": 16, "num_down_blocks": 2,
                         "num_bottleneck_blocks": 2, "estimate_occlusion_map": True,
                         "dense_motion_params": {"block_expansion": 8, "max_features": 16,
                                                 "num_blocks": 3, "scale_factor": 0.25}},
}


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_measure_reports_stages(monkeypatch, backend):
    real = models.load_model_params
    monkeypatch.setattr(models, "load_model_params", lambda source=None: real(TINY if source is None else source))
    args = argparse.Namespace(checkpoint=None, device="cpu", half=False, backend=backend, frames=3, warmup=1)
    result = bench_fomm.measure(args)
    summary = result.summary()
    assert set(summary["stages_ms"]) == {"keypoints", "dense_motion", "generator"}
    assert summary["frames"] == 3 and summary["fps"] > 0
    assert summary["backend"] == backend


@pytest.mark.slow
def test_cli_bench_vox256_json():
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "main.py", "bench", "--engine", "fomm", "--frames", "2",
                           "--warmup", "1", "--device", "cpu", "--json"],
                          cwd=root, capture_output=True, text=True, timeout=600, check=True)
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    assert data["ms_per_frame"] > 0 and data["fps"] > 0
