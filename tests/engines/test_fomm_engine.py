"""FommEngine on a tiny random model: caching, relative/absolute motion, backends, half path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fomm_helpers import randomize, tiny_params

from avatarify_app.config import EngineConfig, MotionOptions
from avatarify_app.engines.base import Engine
from avatarify_app.engines.fomm.engine import FommEngine, resolve_backend
from avatarify_app.errors import BadImageError, ConfigError, EngineError
from avatarify_app.models import build_models, load_model_params
from avatarify_app.motion import relative_keypoints

SIZE = 64
PARAMS = tiny_params()


@pytest.fixture(scope="module")
def models():
    kp_detector, generator = build_models(load_model_params(PARAMS))
    return randomize(kp_detector, 3), randomize(generator, 4)


def _frames(n, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (SIZE // 8, SIZE // 8, 3), dtype=np.uint8)
    out = []
    for i in range(n):
        img = np.kron(np.roll(base, i, axis=1), np.ones((8, 8, 1), np.uint8))
        out.append(np.ascontiguousarray(img))
    return out


def _t(frame):
    return torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255.0


def _eager(models, source, reference, driving, relative=True, adapt=True):
    """The plain uncached computation the engine must agree with."""
    kp_detector, generator = models
    with torch.inference_mode():
        kp_s, kp_r, kp_d = kp_detector(_t(source)), kp_detector(_t(reference)), kp_detector(_t(driving))
        kp_n = relative_keypoints(kp_s, kp_d, kp_r, adapt_movement_scale=adapt, use_relative_movement=relative)
        pred = generator(_t(source), kp_source=kp_s, kp_driving=kp_n)["prediction"]
    return (pred[0].permute(1, 2, 0).numpy() * 255.0).round().clip(0, 255).astype(np.uint8)


def _diff(a, b):
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def test_engine_protocol_and_frame_contract(models):
    engine = FommEngine(*models, backend="torch", size=SIZE)
    assert isinstance(engine, Engine)
    assert engine.name == "fomm" and engine.size == SIZE and "cpu" in engine.device
    with pytest.raises(EngineError):
        engine.predict(_frames(1)[0])
    source, d0, d1 = _frames(3)
    engine.set_source(source)
    assert engine.debug_info() == {}
    assert not engine.has_reference()
    out = engine.predict(d0)
    assert out.dtype == np.uint8 and out.shape == (SIZE, SIZE, 3) and out.flags.c_contiguous
    assert engine.has_reference(), "the first predicted frame becomes the reference"
    engine.reset()
    assert not engine.has_reference()
    with pytest.raises(ValueError):
        engine.predict(d1.astype(np.float32))
    with pytest.raises(BadImageError):
        engine.set_source(np.zeros((SIZE, SIZE), np.uint8))
    engine.close()


@pytest.mark.parametrize("relative", [True, False])
def test_cached_engine_matches_eager(models, relative):
    source, ref, drv = _frames(3, seed=5)
    engine = FommEngine(*models, backend="torch", size=SIZE,
                        options=MotionOptions(relative=relative, adapt_scale=True))
    engine.set_source(source)
    engine.set_reference(ref)
    assert _diff(engine.predict(drv), _eager(models, source, ref, drv, relative=relative)) <= 1
    # Caching is per source: a new avatar gives the eager result for that avatar.
    other = _frames(1, seed=9)[0]
    engine.set_source(other)
    assert _diff(engine.predict(drv), _eager(models, other, ref, drv, relative=relative)) <= 1


def test_first_frame_reference_and_options(models):
    source, d0, d1 = _frames(3, seed=2)
    engine = FommEngine(*models, backend="torch", size=SIZE, options=MotionOptions(True, False))
    engine.set_source(source)
    engine.predict(d0)
    assert _diff(engine.predict(d1), _eager(models, source, d0, d1, adapt=False)) <= 1
    engine.set_options(MotionOptions(relative=False, adapt_scale=False))
    assert _diff(engine.predict(d1), _eager(models, source, d0, d1, relative=False)) <= 1


def test_debug_info(models):
    source, d0 = _frames(2)
    engine = FommEngine(*models, backend="torch", size=SIZE)
    engine.set_source(source)
    engine.predict(d0)
    info = engine.debug_info()
    assert info["source_keypoints"].shape == (4, 2) and info["driving_keypoints"].shape == (4, 2)
    assert (info["source_keypoints"] >= 0).all() and (info["source_keypoints"] <= SIZE - 1).all()
    assert info["occlusion"].shape == (16, 16)
    assert 0.0 <= info["occlusion"].min() and info["occlusion"].max() <= 1.0
    assert info["flow"].shape == (SIZE, SIZE, 2) and info["flow"].dtype == np.float32
    assert np.isfinite(info["flow"]).all()


def test_half_generator_on_cpu_close_to_float32(models):
    """Bound: the float16 generator stays within 4/255 of float32 (max over pixels), mean < 0.5/255."""
    source, ref, drv = _frames(3, seed=7)
    outs = []
    for half in (False, True):
        engine = FommEngine(*models, backend="torch", half=half, size=SIZE)
        assert engine.half is half
        engine.set_source(source)
        engine.set_reference(ref)
        outs.append(engine.predict(drv).astype(int))
        if half:
            assert engine._source.features.dtype == torch.float16
            assert engine._source.kp_value.dtype == torch.float32
    err = np.abs(outs[0] - outs[1])
    assert err.max() <= 4 and err.mean() < 0.5


def test_resize_of_other_sizes(models):
    engine = FommEngine(*models, backend="torch", size=SIZE)
    big = np.ascontiguousarray(np.kron(_frames(1)[0], np.ones((2, 2, 1), np.uint8)))
    engine.set_source(big)
    assert engine.predict(big).shape == (SIZE, SIZE, 3)


def test_backend_resolution():
    cpu = torch.device("cpu")
    assert resolve_backend("auto", cpu, False) == "onnx"
    assert resolve_backend("auto", cpu, True) == "torch"
    assert resolve_backend("torch", cpu, False) == "torch"
    with pytest.raises(ConfigError):
        resolve_backend("onnx", cpu, True)
    with pytest.raises(ConfigError):
        resolve_backend("tensorrt", cpu, False)


def test_from_config_loads_checkpoint(tmp_path, models):
    path = tmp_path / "tiny.pth.tar"
    torch.save({"kp_detector": models[0].state_dict(), "generator": models[1].state_dict(), "epoch": 1}, path)
    engine = FommEngine.from_config(EngineConfig(name="fomm", device="cpu", options={"backend": "torch"}), path,
                                    MotionOptions(), model_params=PARAMS, size=SIZE)
    source, d0 = _frames(2)
    engine.set_source(source)
    assert engine.predict(d0).shape == (SIZE, SIZE, 3)


def test_onnx_backend_matches_torch_and_keeps_sources_apart(models, isolated_home):
    frames = _frames(4, seed=11)
    src_a, src_b, ref, drv = frames[0], _frames(1, seed=12)[0], frames[2], frames[3]
    onnx = FommEngine(*models, backend="onnx", size=SIZE)
    torch_engine = FommEngine(*models, backend="torch", size=SIZE)
    folder = onnx.onnx_dir
    assert folder.is_relative_to(isolated_home) and sorted(p.name for p in folder.glob("*.onnx")) == [
        "decode.onnx", "keypoints.onnx", "motion.onnx"]
    outs = {}
    for name, src in (("a", src_a), ("b", src_b)):
        for engine in (onnx, torch_engine):
            engine.set_source(src)
            engine.set_reference(ref)
        outs[name] = onnx.predict(drv)
        assert _diff(outs[name], torch_engine.predict(drv)) <= 1
    # Source tensors are graph inputs: a second avatar is not baked out by the first one.
    assert _diff(outs["a"], outs["b"]) > 10
    # A second engine with the same weights reuses the cached graphs.
    stamp = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.onnx")}
    again = FommEngine(*models, backend="onnx", size=SIZE)
    assert again.onnx_dir == folder
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("*.onnx")} == stamp
    # Different weights, different cache entry.
    changed = (models[0], randomize(build_models(load_model_params(PARAMS))[1], 99))
    assert FommEngine(*changed, backend="onnx", size=SIZE).onnx_dir != folder
    onnx.close()
