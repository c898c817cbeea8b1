"""The LivePortrait engine as the rest of the app meets it: registration and detection, the
released folder through the registry, the Engine protocol on real portrait crops, live
controls, debug arrays, timings, and half precision against float32."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lp_engine_helpers import TINY_INPUT, tiny_models

from avatarify_app.config import EngineConfig, MotionOptions
from avatarify_app.engines import REGISTRY, create_engine
from avatarify_app.engines import liveportrait as lp
from avatarify_app.engines.base import Engine
from avatarify_app.engines.liveportrait import drive
from avatarify_app.engines.liveportrait import engine as engine_module
from avatarify_app.errors import BadImageError, CheckpointError, ConfigError, EngineError, NoFaceError
from avatarify_app.gui.debug_view import sort_debug

HALF_BOUND = 0.03
"""Max |fp16 autocast - float32| of a decoded image in [0, 1] (tiny networks, CPU; measured 0.0105)."""
KP_HALF_BOUND = 0.005
"""Max |fp16 - float32| of the driving keypoints (motion extractor in fp16, maths in float32; measured 0.0013)."""


@pytest.fixture
def tiny_input(monkeypatch):
    """Engines the factories build take the tiny networks' 64 px input."""
    monkeypatch.setattr(engine_module, "INPUT_SIZE", TINY_INPUT)


# ----------------------------------------------------------------------------- registration
def test_registered_first_so_auto_tries_it_first():
    assert REGISTRY.names()[0] == "liveportrait"
    spec = REGISTRY.get("liveportrait")
    live = {o.name for o in spec.options if o.live}
    assert live == {"stitching", "driving_multiplier", "expression_friendly", "animation_region", "eye_open",
                    "mouth_open", "retargeting", "normalize_lip"}
    assert set(engine_module.CONTROL_FIELDS) == live
    assert spec.option("eye_open").default == drive.FOLLOW == lp.FOLLOW
    # shared names keep one kind of value with the FOMM engine's (a path either way: FOMM's
    # checkpoint is a file, LivePortrait's a folder, so the GUI asks for a folder there)
    fomm = REGISTRY.get("fomm")
    for name in ("model_config", "backend"):
        assert spec.option(name).kind == fomm.option(name).kind
    assert (fomm.option("checkpoint").kind, spec.option("checkpoint").kind) == ("path", "folder")


def test_shared_backend_flag_takes_each_engines_choices():
    from avatarify_app.cli import build_parser
    from avatarify_app.engines import engine_config_from_args

    parser = build_parser(only="bench")
    fomm = engine_config_from_args(parser.parse_args(["bench", "--engine", "fomm", "--backend", "onnx"]))
    assert fomm.options == {"backend": "onnx"}
    config = engine_config_from_args(parser.parse_args(
        ["bench", "--engine", "liveportrait", "--backend", "torch", "--no-stitching", "--eye-open", "0.3",
         "--animation-region", "lip", "--driving-multiplier", "1.5"]))
    assert config.options == {"backend": "torch", "stitching": False, "eye_open": 0.3, "animation_region": "lip",
                              "driving_multiplier": 1.5}
    with pytest.raises(ConfigError, match="auto, torch, fast"):
        engine_config_from_args(parser.parse_args(["bench", "--engine", "liveportrait", "--backend", "onnx"]))


# ----------------------------------------------------------------------------- detection
def test_detect_without_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(lp, "CHECKPOINTS_DIR", tmp_path)
    found = lp.detect(EngineConfig(name="liveportrait"))
    assert not found.ok and "checkpoints/liveportrait" in found.reason and "README" in found.reason
    (tmp_path / "liveportrait" / "base_models").mkdir(parents=True)
    (tmp_path / "liveportrait" / "base_models" / "motion_extractor.pth").write_bytes(b"x")
    found = lp.detect(EngineConfig(name="liveportrait"))
    assert not found.ok and "base_models/warping_module.pth" in found.reason
    assert "motion_extractor" not in found.reason
    file = tmp_path / "vox.pth.tar"
    file.write_bytes(b"x")
    found = lp.detect(EngineConfig(name="liveportrait", options={"checkpoint": str(file)}))
    assert not found.ok and "not a LivePortrait folder" in found.reason


def test_detect_with_weights_is_auto_only_on_cuda(tiny_folder, monkeypatch):
    folder, _ = tiny_folder
    on = {"checkpoint": str(folder)}
    cpu = lp.detect(EngineConfig(name="liveportrait", device="cpu", options=on))
    assert cpu.ok and not cpu.auto
    assert "s, far from live" in cpu.reason and "use a GPU or a remote server (`serve`)" in cpu.reason
    assert f"{lp.CPU_SECONDS_PER_FRAME:.0f} s" in cpu.reason
    cuda = lp.detect(EngineConfig(name="liveportrait", device="cuda", options=on))
    assert cuda.ok and cuda.auto
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert lp.detect(EngineConfig(name="liveportrait", device="auto", options=on)).auto
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    auto = lp.detect(EngineConfig(name="liveportrait", device="auto", options=on))
    assert auto.ok and not auto.auto
    # --engine auto then skips it and says why
    choice = REGISTRY.choose(EngineConfig(name="auto", device="cpu", options=on))
    assert choice.name != "liveportrait" and "liveportrait: skipped" in choice.explain()
    assert "use a GPU" in choice.explain()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert REGISTRY.choose(EngineConfig(name="auto", options=on)).name == "liveportrait"


def test_detect_imports_no_torch_without_weights(tmp_path):
    import subprocess
    import sys

    code = ("import sys; from avatarify_app.config import EngineConfig; from avatarify_app.engines import REGISTRY; "
            f"a = REGISTRY.get('liveportrait').detect(EngineConfig(options={{'checkpoint': {str(tmp_path)!r}}})); "
            "print(a.ok, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


# ----------------------------------------------------------------------------- building
def test_released_folder_through_the_registry(tiny_folder, tiny_input, portraits):
    folder, config = tiny_folder
    engine = create_engine(EngineConfig(name="liveportrait", device="cpu",
                                        options={"checkpoint": str(folder), "model_config": str(config),
                                                 "backend": "torch", "eye_open": 0.2}))
    try:
        assert isinstance(engine, Engine)
        assert engine.name == "liveportrait" and engine.size == 512 and engine.output_size == 512
        assert engine.backend == "torch" and not engine.half and "cpu" in engine.device
        assert engine.settings.eye_open == 0.2 and engine.settings.stitching
        crop, lms = portraits["astronaut"]
        engine.set_source(crop, lms)
        assert not engine.has_reference()
        out = engine.predict(*portraits["mona_lisa"])
        assert engine.has_reference()
        assert out.shape == (512, 512, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
        assert set(engine.timings()) == {"motion", "stitching", "warp", "decode", "paste"}
        assert all(v >= 0 for v in engine.timings().values())
    finally:
        engine.close()


def test_the_whole_download_folder_is_taken_too(tiny_folder, tiny_input):
    """`huggingface-cli download KwaiVGI/LivePortrait --local-dir DIR` puts the release in
    DIR/liveportrait/ (beside insightface/): DIR works as --checkpoint and as checkpoints/liveportrait."""
    folder, config = tiny_folder
    download = folder.parent
    (download / "insightface").mkdir(exist_ok=True)
    options = {"checkpoint": str(download), "model_config": str(config), "backend": "torch"}
    found = lp.detect(EngineConfig(name="liveportrait", device="cpu", options=options))
    assert found.ok and str(folder) in found.reason
    engine = create_engine(EngineConfig(name="liveportrait", device="cpu", options=options))
    try:
        assert engine.name == "liveportrait" and engine.size == 512
    finally:
        engine.close()
    # a file of the release (File > Load checkpoint picks files) names its folder
    weights = next((folder / "base_models").glob("motion_extractor.*"))
    found = lp.detect(EngineConfig(name="liveportrait", device="cpu", options={"checkpoint": str(weights)}))
    assert found.ok and str(folder) in found.reason
    assert REGISTRY.get("liveportrait").option("checkpoint").kind == "folder"  # the GUI's Choose... picks a folder
    # a folder with neither layout still says what it lacks
    empty = download / "insightface"
    found = lp.detect(EngineConfig(name="liveportrait", device="cpu", options={"checkpoint": str(empty)}))
    assert not found.ok and "base_models/motion_extractor.pth" in found.reason


def test_missing_folder_and_unknown_backend(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        create_engine(EngineConfig(name="liveportrait", options={"checkpoint": str(tmp_path / "nope")}))
    with pytest.raises(ConfigError, match="auto, torch or fast"):
        engine_module.LivePortraitEngine(tiny_models(), device="cpu", backend="onnx")
    engine = engine_module.LivePortraitEngine(tiny_models(), device="cpu", backend="fast")
    assert engine.runtime.name == "fast" and engine.backend == "fast"
    engine.close()


def test_bench_factory_builds_the_released_sizes_with_random_weights(monkeypatch):
    built = {}

    class Probe:
        def __init__(self, models, **kwargs):
            built.update(kwargs, models=models)

    monkeypatch.setattr(engine_module, "LivePortraitEngine", Probe)
    lp.create_random(EngineConfig(name="liveportrait", device="cpu"), MotionOptions())
    models = built["models"]
    assert models.motion_extractor.detector.fc_kp.out_features == 63  # 21 keypoints
    assert models.spade_generator.upscale == 2  # 512 px output
    assert models.stitching_retargeting_module is not None
    assert built["device"] == "cpu"


# ----------------------------------------------------------------------------- protocol
def test_protocol_on_real_crops(make_engine, portraits):
    engine = make_engine()
    with pytest.raises(EngineError, match="No avatar"):
        engine.predict(*portraits["astronaut"])
    with pytest.raises(BadImageError):
        engine.set_source(np.zeros((10, 10), np.uint8))
    with pytest.raises(NoFaceError):
        engine.set_source(np.full((512, 512, 3), 127, np.uint8))  # no landmarks given, no face to find
    engine.set_source(*portraits["mona_lisa"])
    driving, lms = portraits["astronaut"]
    first = engine.predict(driving, lms)
    assert engine.has_reference()
    # the landmarks are found when not given; a 256 crop is scaled to the engine's 512
    small = np.ascontiguousarray(driving[::2, ::2])
    engine.reset()
    assert not engine.has_reference()
    again = engine.predict(small)
    assert again.shape == first.shape and engine.has_reference()


def test_reference_frame_reproduces_the_source_keypoints(make_engine, portraits):
    engine = make_engine()
    engine.set_source(*portraits["mona_lisa"])
    engine.set_controls({"stitching": False})
    engine.set_reference(*portraits["astronaut"])
    engine.predict(*portraits["astronaut"])
    torch.testing.assert_close(engine._last["x_d"], engine._driver.x_s, atol=1e-5, rtol=0)
    engine.set_options(MotionOptions(relative=False))
    engine.predict(*portraits["astronaut"])
    assert (engine._last["x_d"] - engine._driver.x_s).abs().max() > 1e-3


def test_live_controls_change_the_next_frame(make_engine, portraits):
    engine = make_engine()
    engine.set_source(*portraits["mona_lisa"])
    engine.set_reference(*portraits["mona_lisa"])
    drive_frame = portraits["astronaut"]
    base = engine.predict(*drive_frame)
    x_base = engine._last["x_d"].clone()
    for values in ({"eye_open": 0.0}, {"mouth_open": 0.6}, {"driving_multiplier": 0.0},
                   {"animation_region": "pose"}, {"stitching": False}):
        engine.set_controls({**values, "unrelated_option": 1})
        out = engine.predict(*drive_frame)
        assert (engine._last["x_d"] - x_base).abs().max() > 1e-4, values
        assert np.abs(out.astype(int) - base).max() > 0, values
        engine.set_controls({"eye_open": lp.FOLLOW, "mouth_open": lp.FOLLOW, "driving_multiplier": 1.0,
                             "animation_region": "all", "stitching": True})
    engine.predict(*drive_frame)
    torch.testing.assert_close(engine._last["x_d"], x_base)
    with pytest.raises(ConfigError, match="animation-region"):
        engine.set_controls({"animation_region": "nose"})
    engine.set_controls({"driving_multiplier": 0.0})
    engine.predict(*drive_frame)
    torch.testing.assert_close(engine._last["x_d"], engine._driver.x_s)


def test_debug_info_for_the_debug_view(make_engine, portraits):
    engine = make_engine()
    assert engine.debug_info() == {}
    crop, lms = portraits["mona_lisa"]
    engine.set_source(crop, lms)
    engine.predict(*portraits["astronaut"])
    info = engine.debug_info()
    for key in ("source_keypoints", "driving_keypoints", "motion_keypoints_on_source"):
        assert info[key].shape == (21, 2) and info[key].dtype == np.float32
    occ = info["occlusion"]
    assert occ.ndim == 2 and occ.min() >= 0 and occ.max() <= 1
    groups = sort_debug(info)
    assert len(groups["source_kp"]) == 1 and len(groups["driving_kp"]) == 1 and len(groups["moved_kp"]) == 1
    assert len(groups["maps"]) == 1
    # keypoints land in crop px through the authors' crop: the projection of the window's own
    # corners (-1, 1 in keypoint units) are its corners in our crop
    window = engine._source.window
    corners = window.points_to_image(np.array([[0.0, 0.0], [TINY_INPUT, TINY_INPUT]]), TINY_INPUT)
    x = torch.tensor([[[-1.0, -1.0, 0.0], [1.0, 1.0, 0.0]]])
    engine._driver.x_s, saved = x, engine._driver.x_s
    np.testing.assert_allclose(engine.debug_info()["source_keypoints"], corners, atol=1e-3)
    engine._driver.x_s = saved


def test_half_precision_against_float32(portraits):
    """CPU float16 autocast (convolutions, grid_sample) against float32, same weights and crops.
    32 px crops: float16 convolutions are slow on a CPU."""
    from avatarify_app.engines.liveportrait.crop import DRIVING_RULE, SOURCE_RULE, cut, window_for
    from avatarify_app.engines.liveportrait.engine import LivePortraitEngine

    models = tiny_models()
    source = cut(portraits["mona_lisa"][0], window_for(portraits["mona_lisa"][1], SOURCE_RULE), 32)
    driving = [cut(c, window_for(lms, DRIVING_RULE), 32) for c, lms in (portraits["mona_lisa"], portraits["astronaut"])]
    outs = {}
    for half in (False, True):
        engine = LivePortraitEngine(models, device="cpu", half=half, backend="torch", input_size=32)
        assert engine.half is half and ("fp16" in engine.device) is half
        engine.set_source_crop(source)
        engine.set_reference_crop(driving[0])
        x_d = engine.driving_keypoints(driving[1])
        assert x_d.dtype == torch.float32  # the keypoint maths stays float32
        outs[half] = (engine.runtime.warp_decode(engine._source.feature, engine._driver.x_s, x_d)["out"], x_d)
        assert outs[half][0].dtype == torch.float32
        engine.close()
    image_err = (outs[True][0] - outs[False][0]).abs().max().item()
    kp_err = (outs[True][1] - outs[False][1]).abs().max().item()
    assert image_err < HALF_BOUND, image_err
    assert kp_err < KP_HALF_BOUND, kp_err
    assert image_err > 0  # the half path really ran in float16


def test_default_half_follows_the_device():
    engine = engine_module.LivePortraitEngine(tiny_models(), device="cpu", backend="torch", input_size=TINY_INPUT)
    assert engine.half is False
    engine.close()


@pytest.mark.gpu
@pytest.mark.parametrize(("half", "expected"), [(None, True), (False, False), (True, True)])
def test_cuda_runs_half_by_default_and_stays_close_to_float32(portraits, half, expected):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device (marker gpu; scripts/gpu_check.sh runs these on one)")
    from avatarify_app.engines.liveportrait.engine import LivePortraitEngine

    models = tiny_models()
    engine = LivePortraitEngine(models, device="cuda", half=half, backend="torch", input_size=TINY_INPUT)
    reference = LivePortraitEngine(tiny_models(), device="cpu", half=False, backend="torch", input_size=TINY_INPUT)
    try:
        assert engine.half is expected and ("fp16" in engine.device) is expected
        outs = []
        for e in (engine, reference):
            e.set_source(*portraits["mona_lisa"])
            outs.append(e.predict(*portraits["astronaut"]).astype(np.int16))
            assert e._last["x_d"].dtype == torch.float32
        # not calibrated on a GPU yet (none here): loose bounds, in 0-255 units, that an fp16
        # path gone wrong (NaNs, overflow, wrong dtype) breaks
        err = np.abs(outs[0] - outs[1])
        assert err.mean() < 2.0 and np.percentile(err, 99) < 16, (err.mean(), np.percentile(err, 99))
    finally:
        engine.close()
        reference.close()
