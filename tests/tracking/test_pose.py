from __future__ import annotations

import numpy as np
import pytest

from avatarify_app.tracking import pose_match


@pytest.fixture
def mesh(aligner, astronaut):
    return aligner.find_face(astronaut).landmarks


def test_same_pose_after_translation_and_scale(mesh):
    assert pose_match(mesh, mesh) == pytest.approx(1.0)
    assert pose_match(mesh, mesh * 2.5 + 40) == pytest.approx(1.0)


def test_rotation_and_expression_lower_the_match(mesh, rng):
    c = mesh.mean(axis=0)

    def roll(deg):
        a = np.deg2rad(deg)
        r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        return (mesh - c) @ r.T + c

    noisy = mesh + rng.normal(0, 0.3, mesh.shape)
    assert pose_match(mesh, noisy) > 0.95
    assert 0.5 < pose_match(mesh, roll(5)) < 0.9
    assert pose_match(mesh, roll(20)) < 0.05
    assert pose_match(mesh, roll(5)) > pose_match(mesh, roll(10)) > pose_match(mesh, roll(20))
    # Open the mouth: lower-lip / chin points move down.
    opened = mesh.copy()
    lower = mesh[:, 1] > mesh[14, 1]
    opened[lower, 1] += 0.15 * (mesh[152, 1] - mesh[10, 1])
    assert pose_match(mesh, opened) < 0.8
    assert pose_match(mesh, opened) == pytest.approx(pose_match(opened, mesh))


def test_bad_input(mesh):
    with pytest.raises(ValueError):
        pose_match(mesh, mesh[:100])
    # Degenerate sets carry no pose: only an identical array matches.
    assert pose_match(np.zeros((468, 2)), mesh) == 0.0
    assert pose_match(np.full((468, 2), 3.0), np.full((468, 2), 3.0)) == 1.0
    bad = mesh.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError):
        pose_match(mesh, bad)
