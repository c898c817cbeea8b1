from __future__ import annotations

import numpy as np
import pytest

from avatarify_app.frames import load_image
from avatarify_app.paths import AVATARS_DIR
from avatarify_app.tracking import pose_match
from avatarify_app.tracking.pose import CALIBRATION_MIN_MATCH, head_pose, pose_hint

from .conftest import place


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


# -- which way to move (pose_hint) on real mediapipe meshes --------------------------------
@pytest.fixture
def canvas_mesh(aligner):
    """The mesh of a picture (its px), found by the real face mesh."""

    def find(picture):
        return aligner.find_face(picture).landmarks

    return find


@pytest.mark.parametrize(("angle", "expected"), [(12.0, "tilt right"), (-12.0, "tilt left")])
def test_hint_for_a_rolled_portrait(astronaut, mesh, canvas_mesh, angle, expected):
    # cv2 turns a positive angle counter-clockwise on the picture: the driving head leans to
    # the picture's left, so it has to tilt back to the right (and the other way round).
    rolled, _ = place(astronaut, astronaut.shape[:2], 0, 0, angle_deg=angle)
    driving = canvas_mesh(rolled)
    assert pose_match(mesh, driving) < CALIBRATION_MIN_MATCH
    assert pose_hint(mesh, driving).split(", ")[0] == expected
    assert head_pose(driving, 256).roll == pytest.approx(head_pose(mesh, 256).roll - angle, abs=2.0)


@pytest.mark.parametrize(("scale", "expected"), [(0.7, "move nearer"), (1.3, "move back")])
def test_hint_for_a_smaller_or_larger_face(astronaut, mesh, canvas_mesh, scale, expected):
    side = astronaut.shape[0]
    offset = side * (1 - scale) / 2
    scaled, _ = place(astronaut, astronaut.shape[:2], offset, offset, scale=scale)
    driving = canvas_mesh(scaled)
    assert pose_hint(mesh, driving).split(", ")[0] == expected
    assert head_pose(driving, side).scale / head_pose(mesh, side).scale == pytest.approx(scale, rel=0.05)
    # Scale does not change the pose match (it is normalised away); only the hint says it.
    assert pose_match(mesh, driving) > 0.8


def test_hint_for_a_turned_head(aligner, astronaut, mesh):
    """The Mona Lisa looks towards the picture's left; the astronaut faces the camera."""
    mona = aligner.find_face(load_image(AVATARS_DIR / "mona_lisa.png")).landmarks
    assert head_pose(mona, 256).yaw < -0.3 < head_pose(mesh, 256).yaw
    assert pose_hint(mona, mesh).split(", ")[0] == "turn left"  # the astronaut has to turn left
    assert pose_hint(mesh, mona).split(", ")[0] == "turn right"
    flipped = aligner.find_face(np.ascontiguousarray(load_image(AVATARS_DIR / "mona_lisa.png")[:, ::-1])).landmarks
    assert head_pose(flipped, 256).yaw > 0.3
    assert pose_hint(mona, flipped).split(", ")[0] == "turn left"


def test_hint_for_a_raised_or_lowered_chin(mesh):
    # The nose tip towards the chin (head down) or towards the eyes (head up), on a real mesh.
    eyes_y = (mesh[33, 1] + mesh[263, 1]) / 2
    for shift, expected in ((0.15, "chin up"), (-0.15, "chin down")):
        driving = mesh.copy()
        driving[1, 1] += shift * (mesh[152, 1] - eyes_y)
        assert pose_hint(mesh, driving) == expected


def test_no_hint_when_the_pose_agrees(mesh, rng):
    assert pose_hint(mesh, mesh) is None
    assert pose_hint(mesh, mesh * 1.05 + 3 + rng.normal(0, 0.3, mesh.shape)) is None  # noise, 5% size
    assert pose_hint(np.zeros((468, 2)), mesh) is None  # degenerate: no pose
    assert pose_hint(mesh[:100], mesh) is None  # not a face mesh
    with pytest.raises(ValueError):
        head_pose(mesh[:10], 256)
