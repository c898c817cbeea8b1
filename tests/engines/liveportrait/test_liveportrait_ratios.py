"""Eye and lip open ratios from our mesh in the authors' conventions, on real faces: open eyes
and closed or open mouths land where the authors' own measurements put them (ratios.py says
where those ranges come from), and the mapping behaves at its ends."""

from __future__ import annotations

import numpy as np
import pytest

from avatarify_app.engines.liveportrait.ratios import (
    EYE_GAIN,
    EYE_MESH_CLOSED,
    LIP_MESH_CLOSED,
    eye_from_mesh,
    lip_from_mesh,
    mesh_ratios,
    open_ratios,
)

AUTHORS_OPEN_EYES = (0.2, 0.6)  # their templates: open eyes 0.24-0.57
AUTHORS_CLOSED_LIPS = 0.03  # their lip_normalize_threshold


def test_shipped_portraits(portraits):
    mona = open_ratios(portraits["mona_lisa"][1])
    astronaut = open_ratios(portraits["astronaut"][1])
    for r in (mona, astronaut):
        assert AUTHORS_OPEN_EYES[0] < r.eye_left < AUTHORS_OPEN_EYES[1]
        assert AUTHORS_OPEN_EYES[0] < r.eye_right < AUTHORS_OPEN_EYES[1]
    assert mona.lip < AUTHORS_CLOSED_LIPS  # closed mouth
    assert astronaut.lip > 0.1  # smiling with the teeth showing


def test_shared_photos_and_a_blinking_video(media_dir):
    from avatarify_app.pipeline.video import iter_video
    from avatarify_app.tracking import FaceMesh, align_portrait

    for name in ("einstein.jpg", "mona.jpg"):  # open eyes, closed mouths
        r = open_ratios(align_portrait(media_dir / name).landmarks)
        assert AUTHORS_OPEN_EYES[0] < r.eyes < AUTHORS_OPEN_EYES[1], name
        assert r.lip < AUTHORS_CLOSED_LIPS, name
    mesh = FaceMesh(static=False)
    try:
        eyes, lips = [], []
        for frame in iter_video(media_dir / "Megamind.avi", max_frames=150):
            lms = mesh.landmarks(frame)
            if lms is not None:
                r = open_ratios(lms)
                eyes.append(r.eyes)
                lips.append(r.lip)
    finally:
        mesh.close()
    eyes, lips = np.array(eyes), np.array(lips)
    assert len(eyes) > 100
    # mostly open eyes in the authors' range, and a talking mouth opening and closing
    assert AUTHORS_OPEN_EYES[0] < np.median(eyes) < AUTHORS_OPEN_EYES[1]
    assert lips.min() < AUTHORS_CLOSED_LIPS and lips.max() > 0.1


def test_mapping_ends():
    assert eye_from_mesh(EYE_MESH_CLOSED) == 0.0 and eye_from_mesh(0.05) == 0.0
    assert eye_from_mesh(0.32) == pytest.approx((0.32 - EYE_MESH_CLOSED) * EYE_GAIN)
    assert 0.27 < eye_from_mesh(0.32) < 0.31  # the mesh's typical open eye -> the authors' typical open eye
    assert lip_from_mesh(LIP_MESH_CLOSED) == 0.0 and lip_from_mesh(0.5) == pytest.approx(0.48)


def test_synthetic_mesh_measures_the_right_points():
    p = np.zeros((468, 2), np.float32)
    p[33], p[133], p[159], p[145] = (0, 0), (10, 0), (5, -1), (5, 2)  # 3 / 10
    p[362], p[263], p[386], p[374] = (20, 0), (30, 0), (25, -2), (25, 2)  # 4 / 10
    p[61], p[291], p[13], p[14] = (0, 30), (20, 30), (10, 29), (10, 33)  # 4 / 20
    assert mesh_ratios(p) == pytest.approx((0.3, 0.4, 0.2), abs=1e-5)
    assert mesh_ratios(p * 3.7) == pytest.approx((0.3, 0.4, 0.2), abs=1e-5)  # scale-free
    with pytest.raises(ValueError, match="468"):
        mesh_ratios(p[:100])
