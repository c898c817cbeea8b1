"""The fast LivePortrait runtime keeps the reference modules' outputs: each rewrite on its own
(phase-decomposed convs, FFT and shift-sum convs, Winograd, separable sampling) and the whole
runtime on tiny configurations, plus one full-size check (slow)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models" / "liveportrait"))
from lp_helpers import fill_models, images, tiny_params

from avatarify_app.engines.common.allocator import keep_freed_memory
from avatarify_app.engines.common.winograd import WinogradConv
from avatarify_app.engines.liveportrait._fast_ops import (
    FFTConv3d,
    ShiftSumConv2d,
    conv_module,
    winograd_pays,
)
from avatarify_app.engines.liveportrait._fast_spade import (
    FastSPADEDecoder,
    UpsampledConv,
    phase_kernels,
)
from avatarify_app.engines.liveportrait._fast_warp import (
    FastWarping,
    gaussian_factors,
    outer3,
)
from avatarify_app.engines.liveportrait.fast import FastRuntime
from avatarify_app.models import build_liveportrait
from avatarify_app.models.liveportrait.geometry import kp2gaussian


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one intra-op thread is faster, and steady when other work shares the CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _close(out: torch.Tensor, ref: torch.Tensor, rel: float = 1e-5) -> None:
    err = float((out - ref).abs().max())
    assert err <= rel * max(1.0, float(ref.abs().max())), f"max abs error {err:.3g}"


def _models(seed: int = 0, **kw):
    return fill_models(build_liveportrait(tiny_params(**kw)), seed).eval()


def _keypoints(batch: int, num_kp: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    kp_source = (torch.rand(batch, num_kp, 3, generator=g) - 0.5) * 1.6
    kp_driving = kp_source + (torch.rand(batch, num_kp, 3, generator=g) - 0.5) * 0.3
    return kp_source, kp_driving


# -- the single rewrites -------------------------------------------------------------------

@pytest.mark.parametrize("factor", [1, 2, 4])
def test_upsampled_conv_is_the_conv_of_the_upsampled_map(factor):
    torch.manual_seed(factor)
    w, b = torch.randn(5, 3, 3, 3), torch.randn(5)
    x = torch.randn(2, 3, 6, 7)
    ref = F.relu(F.conv2d(F.interpolate(x, scale_factor=factor, mode="nearest"), w, b, padding=1))
    _close(UpsampledConv(w, b, factor)(x), ref)
    # 3x3 = 9 taps per output pixel become (1 + 2 + ... per class) taps per f x f pixels.
    taps = sum(k.shape[2] * k.shape[3] for *_, k in phase_kernels(w, factor))
    assert taps == {1: 9, 2: 16, 4: 25}[factor]


@pytest.mark.parametrize(("shape", "tile"), [((2, 3, 5, 13, 21), 8), ((1, 4, 3, 16, 16), 16)])
def test_fft_conv3d_matches_conv3d(shape, tile):
    torch.manual_seed(0)
    w, b = torch.randn(2, shape[1], 7, 7, 7), torch.randn(2)
    x = torch.randn(*shape)
    conv = FFTConv3d(w, b, tile=tile)
    _close(conv(x), F.conv3d(x, w, b, padding=3))
    _close(conv(x[:, :, :2]), F.conv3d(x[:, :, :2], w, b, padding=3))  # another depth: new spectra
    with pytest.raises(ValueError):
        FFTConv3d(torch.randn(2, 3, 3, 5, 5), None)


def test_shift_sum_conv_matches_conv2d():
    torch.manual_seed(0)
    w, b = torch.randn(1, 6, 7, 7), torch.randn(1)
    x = torch.randn(2, 6, 9, 12)
    _close(ShiftSumConv2d(w, b)(x), F.conv2d(x, w, b, padding=3))


@pytest.mark.parametrize("chunk", [1, 5, 512])
@pytest.mark.parametrize(("xshape", "wshape"), [((2, 5, 9, 13), (7, 5, 3, 3)),
                                                ((1, 5, 3, 10, 7), (4, 5, 3, 3, 3)),
                                                ((2, 3, 4, 8, 8), (6, 3, 1, 3, 3))])
def test_winograd_conv_matches_direct(xshape, wshape, chunk):
    torch.manual_seed(chunk)
    x, w, b = torch.randn(*xshape), torch.randn(*wshape), torch.randn(wshape[0])
    if len(xshape) == 4:
        ref = F.conv2d(x, w, b, padding=1)
    else:
        ref = F.conv3d(x, w, b, padding=(wshape[2] // 2, 1, 1))
    _close(WinogradConv(w, b, tiles_per_chunk=chunk)(x), ref, rel=1e-4)
    _close(WinogradConv(w, b, activation="relu", tiles_per_chunk=chunk)(x), ref.relu(), rel=1e-4)
    lrelu = WinogradConv(w, b, activation="leaky_relu", negative_slope=0.2, tiles_per_chunk=chunk)
    _close(lrelu(x), F.leaky_relu(ref, 0.2), rel=1e-4)


def test_winograd_conv_refuses_other_kernels():
    with pytest.raises(ValueError):
        WinogradConv(torch.randn(2, 2, 5, 5), None)
    with pytest.raises(ValueError):
        WinogradConv(torch.randn(2, 2, 3, 3), None, activation="gelu")
    with pytest.raises(ValueError):
        WinogradConv(torch.randn(2, 3, 3, 3), None)(torch.randn(1, 2, 8, 8))


def test_conv_module_policy():
    big, small = torch.randn(512, 512, 3, 3), torch.randn(8, 8, 3, 3)
    assert winograd_pays(big) and not winograd_pays(small)
    assert not winograd_pays(torch.randn(512, 512, 1, 1))
    assert isinstance(conv_module(big, None), WinogradConv)
    assert not isinstance(conv_module(small, None), WinogradConv)
    assert isinstance(conv_module(small, None, winograd=True), WinogradConv)
    assert not isinstance(conv_module(big, None, winograd=False), WinogradConv)
    assert not isinstance(conv_module(torch.randn(4, 4, 1, 1), None, winograd=True), WinogradConv)
    with pytest.raises(ValueError):
        conv_module(small, None, winograd="yes")


def test_keep_freed_memory_is_idempotent_and_safe():
    first = keep_freed_memory()
    assert keep_freed_memory() == first
    if sys.platform.startswith("linux") and Path("/lib/x86_64-linux-gnu/libc.so.6").exists():
        assert first  # glibc takes the thresholds
    assert torch.ones(8 * 2**20).sum() == 8 * 2**20  # large blocks still allocate and free


def test_gaussian_factors_are_kp2gaussian():
    kp, _ = _keypoints(2, 5, 0)
    spatial = (4, 6, 10)
    _close(outer3(*gaussian_factors(kp, spatial)), kp2gaussian(kp, spatial))


def test_candidate_sampling_is_grid_sample():
    models = _models()
    dm = models.warping_module.dense_motion_network
    fast = FastWarping(models.warping_module)
    kp_source, kp_driving = _keypoints(2, 21, 1)
    kp_driving[0, 0] += 1.5  # a candidate that samples mostly outside the volume (zero padding)
    volume = torch.randn(2, 2, 4, 16, 16)
    with torch.no_grad():
        ref = dm.create_deformed_feature(volume, dm.create_sparse_motions(volume, kp_driving, kp_source))
        offsets = torch.cat([kp_source.new_zeros(2, 1, 3), kp_source - kp_driving], dim=1)
        _close(fast.sample_candidates(volume, offsets), ref, rel=1e-5)


# -- whole modules on tiny configurations ------------------------------------------------------

@pytest.mark.parametrize("winograd", [False, True])
@pytest.mark.parametrize("kw", [{}, {"occlusion": False}, {"num_kp": 5, "depth": 8}])
def test_fast_warping_matches_reference(kw, winograd):
    models = _models(**kw)
    num_kp = models.warping_module.dense_motion_network.num_kp
    depth = models.appearance_feature_extractor.reshape_depth
    fast = FastWarping(models.warping_module, winograd=winograd, fft_tile=8)
    g = torch.Generator().manual_seed(2)
    feature = torch.randn(2, 4, depth, 16, 16, generator=g)
    kp_source, kp_driving = _keypoints(2, num_kp, 3)
    with torch.no_grad():
        ref = models.warping_module(feature, kp_driving=kp_driving, kp_source=kp_source)
        out = fast(fast.prepare_source(feature, kp_source), kp_driving)
    for key in ("deformation", "out"):
        _close(out[key], ref[key], rel=1e-4)
    if ref["occlusion_map"] is None:
        assert out["occlusion_map"] is None
    else:
        _close(out["occlusion_map"], ref["occlusion_map"], rel=1e-4)


@pytest.mark.parametrize("winograd", [False, True])
@pytest.mark.parametrize("upscale", [1, 2])
def test_fast_spade_decoder_matches_reference(upscale, winograd):
    models = _models(upscale=upscale)
    feature = torch.randn(2, 8, 16, 16, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        ref = models.spade_generator(feature=feature)
        out = FastSPADEDecoder(models.spade_generator, winograd=winograd)(feature)
    assert out.shape == ref.shape == (2, 3, 64 * upscale, 64 * upscale)
    _close(out, ref, rel=1e-4 if winograd else 1e-5)


def _reference_frame(models, source, driving):
    """The reference modules, as the engine's torch path calls them."""
    from avatarify_app.motion import transform_keypoint

    with torch.no_grad():
        feature = models.appearance_feature_extractor(source)
        kp_source = transform_keypoint(models.motion_extractor(source))
        kp_driving = transform_keypoint(models.motion_extractor(driving))
        warped = models.warping_module(feature, kp_driving=kp_driving, kp_source=kp_source)
        return feature, kp_source, kp_driving, warped, models.spade_generator(feature=warped["out"])


@pytest.mark.parametrize("upscale", [1, 2])
def test_fast_runtime_matches_reference_modules(upscale):
    from avatarify_app.motion import transform_keypoint

    models = _models(upscale=upscale)
    source, driving = images(1, seed=5), images(2, seed=6)[1:]
    feature, kp_source, kp_driving, warped, image = _reference_frame(models, source, driving)
    runtime = FastRuntime(models, winograd=True)
    feature_fast = runtime.appearance(source)
    _close(feature_fast, feature)
    motion = runtime.motion(driving)
    assert set(motion) == {"pitch", "yaw", "roll", "t", "exp", "scale", "kp"}
    _close(transform_keypoint(motion), kp_driving)
    runtime.prepare_source(feature, kp_source)
    out = runtime.warp_decode(feature, kp_source, kp_driving)
    assert out["out"].shape == image.shape and out["out"].dtype == torch.float32
    _close(out["out"], image, rel=1e-4)
    _close(out["occlusion_map"], warped["occlusion_map"], rel=1e-4)
    _close(out["deformation"], warped["deformation"], rel=1e-4)
    runtime.close()


def test_fast_runtime_source_cache_follows_the_tensors():
    models = _models()
    runtime = FastRuntime(models)
    feature = torch.randn(1, 4, 4, 16, 16, generator=torch.Generator().manual_seed(7))
    kp_a, kp_driving = _keypoints(1, 21, 8)
    kp_b, _ = _keypoints(1, 21, 9)
    runtime.prepare_source(feature, kp_a)
    cached = runtime._prepared.source
    runtime.warp_decode(feature, kp_a, kp_driving)
    assert runtime._prepared.source is cached  # same tensors: the prepared source is reused
    out_b = runtime.warp_decode(feature, kp_b, kp_driving)  # another source: prepared anew
    assert runtime._prepared.source is not cached
    with torch.no_grad():
        ref = models.warping_module(feature, kp_driving=kp_driving, kp_source=kp_b)
        _close(out_b["out"], models.spade_generator(feature=ref["out"]), rel=1e-4)


def test_fast_runtime_leaves_the_callers_modules_alone():
    models = _models()
    before = {k: v.clone() for k, v in models.motion_extractor.state_dict().items()}
    runtime = FastRuntime(models, half=True)
    assert all(p.dtype == torch.float32 for p in models.motion_extractor.parameters())
    assert all(torch.equal(v, before[k]) for k, v in models.motion_extractor.state_dict().items())
    runtime.close()


def test_fast_runtime_half_precision_on_cpu():
    """Networks in float16, geometry and the FFT conv in float32: no further from float32 than
    the reference modules under float16 autocast (as the authors run them on CUDA); both are
    ~1e-2 to 3e-2 on the 0..1 image with these random tiny weights."""
    models = _models()
    source, driving = images(1, seed=10), images(2, seed=11)[1:]
    feature, kp_source, kp_driving, _, image = _reference_frame(models, source, driving)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.float16):
        warped = models.warping_module(feature, kp_driving=kp_driving, kp_source=kp_source)
        reference_error = float((models.spade_generator(feature=warped["out"]).float() - image).abs().max())
    runtime = FastRuntime(models, half=True)
    out = runtime.warp_decode(feature, kp_source, kp_driving)
    assert out["out"].dtype == torch.float32
    error = float((out["out"] - image).abs().max())
    assert 0 < error <= 1.5 * reference_error + 1e-3


@pytest.mark.slow
def test_fast_runtime_full_size_random_weights():
    """The released sizes (256 crops, 32x16x64x64 volume, 512 output) with seeded random
    weights: the image within 1e-3 of the reference modules (measured ~2e-4)."""
    torch.manual_seed(0)
    models = fill_models(build_liveportrait(), 0).eval()
    g = torch.Generator().manual_seed(12)
    source = F.interpolate(torch.rand(1, 3, 32, 32, generator=g), size=(256, 256), mode="bilinear")
    driving = F.interpolate(torch.rand(1, 3, 32, 32, generator=g), size=(256, 256), mode="bilinear")
    feature, kp_source, kp_driving, warped, image = _reference_frame(models, source, driving)
    runtime = FastRuntime(models)
    out = runtime.warp_decode(feature, kp_source, kp_driving)
    assert out["out"].shape == (1, 3, 512, 512)
    assert float((out["out"] - image).abs().max()) <= 1e-3
    _close(out["occlusion_map"], warped["occlusion_map"], rel=1e-4)
