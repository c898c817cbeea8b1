"""``SpectralNormConv2d`` behaves as ``torch.nn.utils.spectral_norm(nn.Conv2d(...))``, the form
the LivePortrait authors trained and saved with: same state dict, same eval output from the
stored u and v, same power iteration in training mode."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from avatarify_app.models.liveportrait import SpectralNormConv2d


def _pair(fin, fout, k, bias, seed=0):
    torch.manual_seed(seed)
    theirs = nn.utils.spectral_norm(nn.Conv2d(fin, fout, kernel_size=k, padding=k // 2, bias=bias))
    ours = SpectralNormConv2d(fin, fout, kernel_size=k, padding=k // 2, bias=bias)
    with torch.no_grad():  # stored u, v far from the power iteration's fixed point
        theirs.weight_u.copy_(F.normalize(torch.randn(fout), dim=0))
        theirs.weight_v.copy_(F.normalize(torch.randn(fin * k * k), dim=0))
    return theirs, ours


@pytest.mark.parametrize(("fin", "fout", "k", "bias"), [(6, 5, 3, True), (8, 4, 1, False)])
def test_same_state_dict_and_eval_output(fin, fout, k, bias):
    theirs, ours = _pair(fin, fout, k, bias)
    sd = theirs.state_dict()
    assert list(ours.state_dict()) == list(sd)
    ours.load_state_dict(sd, strict=True)
    theirs.eval(), ours.eval()
    x = torch.randn(2, fin, 9, 9)
    with torch.no_grad():
        expected = theirs(x)
        got = ours(x)
        again = ours(x)
    assert torch.allclose(got, expected, atol=1e-6, rtol=1e-5)
    assert torch.equal(got, again), "eval mode must not move u, v"
    assert torch.equal(ours.weight_u, sd["weight_u"]) and torch.equal(ours.weight_v, sd["weight_v"])
    # the stored u, v matter: the true spectral norm gives another output
    sigma_true = torch.linalg.matrix_norm(ours.weight_orig.reshape(fout, -1), ord=2)
    plain = F.conv2d(x, ours.weight_orig / sigma_true, ours.bias, padding=k // 2)
    assert not torch.allclose(plain, got, atol=1e-3)


def test_training_mode_power_iteration_matches():
    theirs, ours = _pair(6, 5, 3, True, seed=1)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    theirs.train(), ours.train()
    x = torch.randn(1, 6, 7, 7)
    for _ in range(3):
        assert torch.allclose(ours(x), theirs(x), atol=1e-6, rtol=1e-5)
        assert torch.allclose(ours.weight_u, theirs.weight_u, atol=1e-6)
        assert torch.allclose(ours.weight_v, theirs.weight_v, atol=1e-6)
    before = ours.weight_u.clone()
    ours(x)
    assert not torch.equal(before, ours.weight_u), "training mode iterates u, v in place"
