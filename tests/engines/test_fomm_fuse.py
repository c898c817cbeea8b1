"""Inference rewrites keep the outputs: BN folding, sub-pixel up blocks, Winograd convolutions."""

from __future__ import annotations

import pytest
import torch
from fomm_helpers import tiny_params

from avatarify_app.engines.fomm.fuse import SubPixelUpBlock, fold_batchnorm, fuse_for_inference
from avatarify_app.engines.fomm.winograd import TiledWinogradConv, from_blocks, to_blocks
from avatarify_app.models import build_models, load_model_params
from avatarify_app.models.fomm.blocks import ResBlock2d, UpBlock2d


def _bn(n, seed):
    g = torch.Generator().manual_seed(seed)
    bn = torch.nn.BatchNorm2d(n).eval()
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(n, generator=g))
        bn.running_var.copy_(torch.rand(n, generator=g) + 0.3)
        bn.weight.copy_(torch.rand(n, generator=g) + 0.5)
        bn.bias.copy_(torch.randn(n, generator=g))
    return bn


def test_fold_batchnorm():
    conv = torch.nn.Conv2d(5, 7, 3, padding=1)
    bn = _bn(7, 0)
    x = torch.randn(2, 5, 9, 11)
    with torch.no_grad():
        assert torch.allclose(fold_batchnorm(conv, bn)(x), bn(conv(x)), atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 6, 5, 7), (2, 6, 8, 8)])
def test_subpixel_up_block(shape):
    block = UpBlock2d(6, 4).eval()
    block.norm = _bn(4, 1)
    x = torch.randn(*shape)
    with torch.no_grad():
        assert torch.allclose(SubPixelUpBlock(block)(x), block(x), atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 8, 16, 16), (2, 8, 8, 12)])
def test_tiled_winograd_conv(shape):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(8, 6, 3, padding=1).eval()
    x = torch.randn(*shape)
    assert torch.equal(from_blocks(to_blocks(x)), x)
    with torch.no_grad():
        ref = conv(x)
        out = from_blocks(TiledWinogradConv(conv)(to_blocks(x)))
    assert torch.allclose(out, ref, atol=1e-4 * float(ref.abs().max()))
    with pytest.raises(ValueError):
        TiledWinogradConv(torch.nn.Conv2d(8, 6, 3, padding=1, stride=2))


@pytest.mark.parametrize("side", [16, 10])
def test_winograd_res_blocks(side):
    torch.manual_seed(1)
    blocks = torch.nn.Sequential(*(ResBlock2d(8) for _ in range(3))).eval()
    for i, bn in enumerate(m for m in blocks.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.load_state_dict(_bn(8, i).state_dict())
    fused = fuse_for_inference(blocks, winograd=True)  # side 10: falls back to direct convs
    x = torch.randn(2, 8, side, side)
    with torch.no_grad():
        ref = blocks(x)
        assert torch.allclose(fused(x), ref, atol=1e-4 * float(ref.abs().max()))


def test_fused_models_match(tiny_models):
    kp_detector, generator = tiny_models
    fk = fuse_for_inference(kp_detector)
    fg = fuse_for_inference(generator, winograd=True)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fk.modules())
    # Only the fallback path of the Winograd bottleneck keeps the two pre-activation norm1.
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in fg.modules()) == 2
    # The originals are untouched (still loadable from checkpoints).
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in generator.bottleneck.r0.modules())
    torch.manual_seed(2)
    src, drv = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        kp_s, kp_d = kp_detector(src), kp_detector(drv)
        fs = fk(src)
        assert torch.allclose(fs["value"], kp_s["value"], atol=1e-5)
        assert torch.allclose(fs["jacobian"], kp_s["jacobian"], atol=1e-4)
        a = generator(src, kp_source=kp_s, kp_driving=kp_d)
        b = fg(src, kp_source=kp_s, kp_driving=kp_d)
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-4), key


@pytest.fixture
def tiny_models():
    params = tiny_params(**{"common_params.num_kp": 3})
    models = build_models(load_model_params(params))
    for seed, m in enumerate(models):
        for i, bn in enumerate(x for x in m.modules() if isinstance(x, torch.nn.BatchNorm2d)):
            fresh = _bn(bn.num_features, 100 * seed + i)
            bn.load_state_dict(fresh.state_dict())
        m.eval()
    return models
