"""Relative motion transfer and its pieces: hull areas, 2x2 algebra, the affine rewrite."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avatarify_app.models import inverse_2x2, matmul_2x2
from avatarify_app.motion import convex_hull_area, relative_keypoints, relative_transform


def test_hull_area_known_shapes(rng):
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0.5, 0.5], [0.2, 0.7]])
    assert convex_hull_area(square) == pytest.approx(1.0)
    triangle = np.array([[0, 0], [4, 0], [0, 3], [1, 1]])
    assert convex_hull_area(torch.tensor(triangle, dtype=torch.float32)) == pytest.approx(6.0)
    assert convex_hull_area(np.array([[0, 0], [1, 1], [2, 2]])) == 0.0
    assert convex_hull_area(np.array([[0, 0], [0, 0]])) == 0.0
    # Regular polygon of many points approaches the circle from below.
    ang = rng.uniform(0, 2 * np.pi, 500)
    pts = np.stack([np.cos(ang), np.sin(ang)], 1)
    assert 3.10 < convex_hull_area(np.concatenate([pts, 0.5 * pts])) < np.pi


def test_inverse_and_product_2x2(rng):
    m = torch.tensor(rng.normal(size=(3, 5, 2, 2)), dtype=torch.float32) + 2 * torch.eye(2)
    assert torch.allclose(inverse_2x2(m), torch.linalg.inv(m), atol=1e-5)
    other = torch.tensor(rng.normal(size=(3, 5, 2, 2)), dtype=torch.float32)
    assert torch.allclose(matmul_2x2(m, other), m @ other, atol=1e-6)


def _kp(rng, b=1, k=6):
    value = torch.tensor(rng.uniform(-0.8, 0.8, size=(b, k, 2)), dtype=torch.float32)
    jac = torch.eye(2) + 0.2 * torch.tensor(rng.normal(size=(b, k, 2, 2)), dtype=torch.float32)
    return {"value": value, "jacobian": jac}


def test_relative_keypoints_formulas(rng):
    src, ref, drv = _kp(rng), _kp(rng), _kp(rng)
    out = relative_keypoints(src, drv, ref)
    assert torch.allclose(out["value"], src["value"] + drv["value"] - ref["value"])
    want = drv["jacobian"] @ torch.linalg.inv(ref["jacobian"]) @ src["jacobian"]
    assert torch.allclose(out["jacobian"], want, atol=1e-5)
    # At the reference frame the source keeps its own keypoints.
    same = relative_keypoints(src, ref, ref, adapt_movement_scale=True)
    assert torch.allclose(same["value"], src["value"], atol=1e-6)
    assert torch.allclose(same["jacobian"], src["jacobian"], atol=1e-5)


def test_adapt_movement_scale(rng):
    src, ref, drv = _kp(rng), _kp(rng), _kp(rng)
    scaled = relative_keypoints(src, drv, ref, adapt_movement_scale=True)
    s = np.sqrt(convex_hull_area(src["value"][0])) / np.sqrt(convex_hull_area(ref["value"][0]))
    assert torch.allclose(scaled["value"], src["value"] + (drv["value"] - ref["value"]) * float(s), atol=1e-6)


def test_switches(rng):
    src, ref, drv = _kp(rng), _kp(rng), _kp(rng)
    absolute = relative_keypoints(src, drv, ref, use_relative_movement=False)
    assert absolute["value"] is drv["value"] and absolute["jacobian"] is drv["jacobian"]
    no_jac = relative_keypoints(src, drv, ref, use_relative_jacobian=False)
    assert no_jac["jacobian"] is drv["jacobian"]
    values_only = relative_keypoints({"value": src["value"]}, {"value": drv["value"]}, {"value": ref["value"]})
    assert set(values_only) == {"value"}


@pytest.mark.parametrize("adapt", [False, True])
@pytest.mark.parametrize("relative", [False, True])
def test_affine_rewrite_matches(rng, relative, adapt):
    src, ref, drv = _kp(rng, b=1), _kp(rng), _kp(rng)
    scale, offset, right = relative_transform(src, ref, relative=relative, adapt_movement_scale=adapt)
    want = relative_keypoints(src, drv, ref, adapt_movement_scale=adapt, use_relative_movement=relative)
    assert torch.allclose(drv["value"] * scale + offset, want["value"], atol=1e-6)
    assert torch.allclose(matmul_2x2(drv["jacobian"], right), want["jacobian"], atol=1e-5)


def test_degenerate_reference_keeps_scale_one(rng):
    src = _kp(rng)
    line = {"value": torch.tensor([[[0.0, 0.0], [0.1, 0.1], [0.2, 0.2]]]), "jacobian": torch.eye(2).expand(1, 3, 2, 2)}
    src3 = {"value": src["value"][:, :3], "jacobian": src["jacobian"][:, :3]}
    scale, _, _ = relative_transform(src3, line, adapt_movement_scale=True)
    assert float(scale) == 1.0
