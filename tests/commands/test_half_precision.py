"""Half precision: one rule for every command that runs an engine. ``--half``/``--no-half`` is
the user's choice; without either, half precision is on for CUDA only. The rule is checked on
the CPU; what needs a CUDA device is marked ``gpu`` and skips without one (scripts/gpu_check.sh
runs it, with the numbers, on a CUDA machine)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fomm_helpers import tiny_params

from avatarify_app.cli import build_parser, main
from avatarify_app.engines import engine_config_from_args

# The smallest arguments each engine command needs, besides the engine's own.
COMMANDS = {
    "live": ["--headless"],
    "animate": ["--source", "a.png", "--driving", "d.mp4", "--output", "o.mp4"],
    "evaluate": ["--video", "v.mp4"],
    "bench": [],
}


@pytest.mark.parametrize("command", [*COMMANDS, "gui"])
@pytest.mark.parametrize(("flags", "half"), [([], None), (["--half"], True), (["--no-half"], False)])
def test_every_engine_command_takes_half_and_no_half(command, flags, half):
    argv = [command, *COMMANDS.get(command, []), "--engine", "fomm", *flags]
    args = build_parser(only=command).parse_args(argv)
    assert engine_config_from_args(args).half is half


@pytest.mark.parametrize(("device", "asked", "runs_half"), [
    ("cuda", None, True),  # the default on CUDA
    ("cuda", False, False),  # --no-half on CUDA is honoured
    ("cuda", True, True),
    ("cpu", None, False),
    ("cpu", True, True),  # an explicit choice is honoured everywhere
    ("cpu", False, False),
    ("mps", None, False),
])
def test_fomm_engine_half_rule(device, asked, runs_half):
    torch = pytest.importorskip("torch")
    from avatarify_app.config import EngineConfig
    from avatarify_app.engines.fomm.engine import resolve_half

    assert resolve_half(torch.device(device), asked) is runs_half
    assert EngineConfig(half=asked).resolved_half(device == "cuda") is runs_half


@pytest.fixture
def tiny_fomm(monkeypatch):
    """bench's random FOMM networks at a tiny size (the rule does not depend on the size)."""
    import avatarify_app.models.fomm as fomm_models

    real = fomm_models.load_model_params
    monkeypatch.setattr(fomm_models, "load_model_params", lambda source=None: real(tiny_params() if source is None else source))


@pytest.mark.parametrize(("flags", "half"), [([], False), (["--half"], True), (["--no-half"], False)])
def test_bench_flags_reach_the_fomm_engine_on_cpu(tiny_fomm, capsys, flags, half):
    rc = main(["bench", "--engine", "fomm", "--device", "cpu", "--backend", "torch", "--frames", "1", "--warmup", "1",
               "--json", *flags])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["half"] is half
    assert ("fp16" in summary["device"]) is half
    assert "vram_peak_mb" not in summary  # no CUDA used


# ----------------------------------------------------------------------------- CUDA only
@pytest.fixture
def cuda():
    """torch, when it sees a CUDA device."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device (marker gpu; scripts/gpu_check.sh runs these on one)")
    return torch


@pytest.mark.gpu
@pytest.mark.parametrize(("flags", "half"), [([], True), (["--no-half"], False), (["--half"], True)])
def test_bench_on_cuda_runs_half_by_default_and_not_with_no_half(cuda, capsys, flags, half):
    rc = main(["bench", "--engine", "fomm", "--device", "cuda", "--frames", "3", "--warmup", "1", "--json", *flags])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["half"] is half and summary["backend"] == "torch"
    assert summary["vram_peak_mb"] > 0


@pytest.mark.gpu
def test_fp16_generator_on_cuda_stays_close_to_fp32(cuda):
    """vox-256 networks with random weights (the same for both): float16 against float32 on
    the same portrait and driving frames, in 0-255 units."""
    from avatarify_app.config import EngineConfig, MotionOptions
    from avatarify_app.engines.fomm import create_random
    from avatarify_app.frames import load_image
    from avatarify_app.paths import AVATARS_DIR

    source = load_image(AVATARS_DIR / "mona_lisa.png")
    driving = load_image(AVATARS_DIR / "astronaut.png")
    outs = {}
    for half in (False, True):
        cuda.manual_seed(0)  # torch's seed: the networks are initialised on the CPU, then moved
        engine = create_random(EngineConfig(name="fomm", device="cuda", half=half), MotionOptions())
        assert engine.half is half
        engine.set_source(source)
        engine.set_reference(source)
        outs[half] = engine.predict(driving).astype(np.int16)
        engine.close()
    err = np.abs(outs[True] - outs[False])
    assert err.mean() < 2.0 and (err > 8).mean() < 0.01, (err.mean(), err.max())
