"""LivePortrait's implicit keypoint maths (``avatarify_app.motion.implicit_keypoints``): pose
bins to degrees, rotation, x = s (x_c R + delta) + t, stitching and eye/lip retargeting."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from avatarify_app.models.liveportrait import StitchingRetargetingNetwork, read_retargeting
from avatarify_app.motion import (
    apply_stitching,
    headpose_to_degrees,
    retarget_eye,
    retarget_lip,
    rotation_matrix,
    stitching_delta,
    transform_keypoint,
)


def test_bins_to_degrees():
    logits = torch.full((3, 66), -1e4)
    logits[0, 0] = logits[1, 65] = 0.0  # certain of the first / last bin
    logits[2] = 0.0  # uniform: the expectation is the middle, frontal
    deg = headpose_to_degrees(logits)
    assert deg.shape == (3,)
    assert torch.allclose(deg, torch.tensor([-97.5, 97.5, 0.0]), atol=1e-4)
    two = torch.full((1, 66), -1e4)
    two[0, 30] = two[0, 32] = 0.0  # half and half: 3 * 31 - 97.5
    assert torch.allclose(headpose_to_degrees(two), torch.tensor([-4.5]), atol=1e-4)
    already = torch.tensor([[12.0], [-3.0]])
    assert headpose_to_degrees(already) is already


def test_rotation_axes_and_order():
    zero = torch.zeros(1)
    ninety = torch.full((1,), 90.0)
    y_axis, x_axis = torch.tensor([[0.0, 1.0, 0.0]]), torch.tensor([[1.0, 0.0, 0.0]])

    def rotate(v, pitch=zero, yaw=zero, roll=zero):
        return (v @ rotation_matrix(pitch, yaw, roll))[0]

    assert torch.allclose(rotate(y_axis, pitch=ninety), torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)
    assert torch.allclose(rotate(x_axis, yaw=ninety), torch.tensor([0.0, 0.0, -1.0]), atol=1e-6)
    assert torch.allclose(rotate(x_axis, roll=ninety), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)
    # pitch acts first, then yaw: y -> z -> x
    assert torch.allclose(rotate(y_axis, pitch=ninety, yaw=ninety), torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)
    angles = torch.tensor([[10.0], [-35.0]]), torch.tensor([[20.0], [50.0]]), torch.tensor([[-5.0], [8.0]])
    rot = rotation_matrix(*angles)
    assert rot.shape == (2, 3, 3)
    assert torch.allclose(rot @ rot.transpose(1, 2), torch.eye(3).expand(2, 3, 3), atol=1e-6)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(2), atol=1e-6)
    assert torch.allclose(rotation_matrix(*(a[:, 0] for a in angles)), rot)  # B or Bx1


def _info(batch=2, num_kp=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"kp": torch.randn(batch, 3 * num_kp, generator=g), "exp": torch.randn(batch, 3 * num_kp, generator=g),
            "pitch": torch.randn(batch, 66, generator=g), "yaw": torch.randn(batch, 66, generator=g),
            "roll": torch.randn(batch, 66, generator=g), "t": torch.randn(batch, 3, generator=g),
            "scale": torch.rand(batch, 1, generator=g) + 0.5}


def test_transform_keypoint_formula():
    info = _info()
    x = transform_keypoint(info)
    assert x.shape == (2, 4, 3)
    deg = {k: headpose_to_degrees(info[k]) for k in ("pitch", "yaw", "roll")}
    rot = rotation_matrix(deg["pitch"], deg["yaw"], deg["roll"])
    for b in range(2):
        kp, exp = info["kp"][b].view(4, 3), info["exp"][b].view(4, 3)
        expected = info["scale"][b] * (kp @ rot[b] + exp)
        expected[:, :2] += info["t"][b, :2]  # tz is not applied
        assert torch.allclose(x[b], expected, atol=1e-6)
    # degrees (Bx1) with BxNx3 arrays give the same, as numpy too
    shaped = {**info, **{k: v[:, None] for k, v in deg.items()},
              "kp": info["kp"].view(2, 4, 3), "exp": info["exp"].view(2, 4, 3)}
    assert torch.allclose(transform_keypoint(shaped), x, atol=1e-6)
    as_numpy = {k: v.numpy() for k, v in shaped.items()}
    assert torch.allclose(transform_keypoint(as_numpy), x, atol=1e-6)
    # a translation in z changes nothing; the scale scales about the origin before t
    moved = transform_keypoint({**info, "t": info["t"] + torch.tensor([0.0, 0.0, 5.0])})
    assert torch.equal(moved, x)
    no_t = transform_keypoint({**info, "t": torch.zeros(2, 3)})
    doubled = transform_keypoint({**info, "t": torch.zeros(2, 3), "scale": info["scale"] * 2})
    assert torch.allclose(doubled, 2 * no_t, atol=1e-6)


class _Recorder(torch.nn.Module):
    """An MLP stand-in that records its input and returns a fixed output."""

    def __init__(self, output):
        super().__init__()
        self.output, self.seen = output, None

    def forward(self, x):
        self.seen = x
        return self.output


def test_stitching_and_retargeting_application():
    g = torch.Generator().manual_seed(3)
    x_s, x_d = torch.randn(2, 4, 3, generator=g), torch.randn(2, 4, 3, generator=g)
    delta = torch.randn(2, 14, generator=g)
    mlp = _Recorder(delta)
    out = apply_stitching(mlp, x_s, x_d)
    assert torch.equal(mlp.seen, torch.cat([x_s.reshape(2, -1), x_d.reshape(2, -1)], dim=1))
    expected = x_d + delta[:, :12].view(2, 4, 3)
    expected[..., 0] += delta[:, 12:13]
    expected[..., 1] += delta[:, 13:14]
    assert torch.allclose(out, expected, atol=1e-7)
    assert torch.equal(stitching_delta(mlp, x_s, x_d), delta)
    assert not torch.equal(out, x_d) and torch.equal(x_d, x_d.clone())  # x_d itself is untouched

    offsets = torch.randn(2, 12, generator=g)
    eye_ratio, lip_ratio = torch.rand(2, 3, generator=g), torch.rand(2, 2, generator=g)
    eye = _Recorder(offsets)
    assert torch.equal(retarget_eye(eye, x_s, eye_ratio), offsets.view(2, 4, 3))
    assert torch.equal(eye.seen, torch.cat([x_s.reshape(2, -1), eye_ratio], dim=1))
    lip = _Recorder(offsets)
    assert torch.equal(retarget_lip(lip, x_s, lip_ratio), offsets.view(2, 4, 3))
    assert torch.equal(lip.seen, torch.cat([x_s.reshape(2, -1), lip_ratio], dim=1))
    with pytest.raises(ValueError, match="batch sizes differ"):
        stitching_delta(mlp, x_s, x_d[:1])


def test_small_lp_keypoint_arrays(shared_liveportrait):
    """The shared case's degrees, keypoints, stitching and retargeting from its own motion
    outputs (the module outputs themselves are checked in tests/models/liveportrait)."""
    root = shared_liveportrait / "small_lp"
    ref = {k: torch.from_numpy(v) for k, v in np.load(root / "case.npz").items()}
    params = json.loads((root / "model_params.json").read_text())["stitching_retargeting_module_params"]
    mlps = {}
    for part, sd in read_retargeting(root / "retargeting_models" / "stitching_retargeting_module.pth").items():
        mlps[part] = StitchingRetargetingNetwork(**params[part]).eval()
        mlps[part].load_state_dict(sd)
    worst = {}
    with torch.inference_mode():
        x = {}
        for p in ("source", "driving0", "driving1"):
            info = {k: ref[f"{p}_{k}"] for k in ("pitch", "yaw", "roll", "t", "exp", "scale", "kp")}
            for angle in ("pitch", "yaw", "roll"):
                worst[f"{p}_{angle}_deg"] = headpose_to_degrees(info[angle])[:, None] - ref[f"{p}_{angle}_deg"]
            x[p] = transform_keypoint(info)
            worst[f"{p}_x"] = x[p] - ref[f"{p}_x"]
            num_kp = x[p].shape[1]
            degrees = {a: ref[f"{p}_{a}_deg"] for a in ("pitch", "yaw", "roll")}
            shaped = {**info, **degrees, "kp": info["kp"].view(-1, num_kp, 3), "exp": info["exp"].view(-1, num_kp, 3)}
            worst[f"{p}_x from degrees"] = transform_keypoint(shaped) - ref[f"{p}_x"]
        for i in (0, 1):
            worst[f"stitching_delta{i}"] = stitching_delta(mlps["stitching"], x["source"], x[f"driving{i}"]) \
                - ref[f"stitching_delta{i}"]
            worst[f"driving{i}_x_stitched"] = apply_stitching(mlps["stitching"], x["source"], x[f"driving{i}"]) \
                - ref[f"driving{i}_x_stitched"]
        worst["eye_delta"] = retarget_eye(mlps["eye"], x["source"], ref["eye_ratio"]) - ref["eye_delta"]
        worst["lip_delta"] = retarget_lip(mlps["lip"], x["source"], ref["lip_ratio"]) - ref["lip_delta"]
    errors = {k: float(v.abs().max()) for k, v in worst.items()}
    assert max(errors.values()) <= 1e-4, errors
