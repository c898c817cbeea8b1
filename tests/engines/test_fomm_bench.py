"""`bench --engine fomm`: measure() on a tiny model (fast) and the real CLI on vox-256 (slow)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
from fomm_helpers import tiny_params

import avatarify_app.models as models
from avatarify_app.commands import bench_fomm

TINY = tiny_params()


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
