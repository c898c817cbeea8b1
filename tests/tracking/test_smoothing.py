from __future__ import annotations

import numpy as np

from avatarify_app.tracking import OneEuroFilter


def test_constant_stays_and_first_value_passes():
    f = OneEuroFilter(0.6, 0.02)
    for i in range(20):
        out = f.filter(np.array([5.0, -3.0]), i / 30)
    np.testing.assert_allclose(out, [5.0, -3.0])


def test_jitter_reduced_and_step_followed(rng):
    f = OneEuroFilter(0.6, 0.02)
    raw = 100 + rng.normal(0, 1.0, 300)
    raw[150:] += 80  # a real move
    out = np.array([f.filter(np.array([v]), i / 30)[0] for i, v in enumerate(raw)])
    assert np.std(np.diff(out[50:150])) < 0.3 * np.std(np.diff(raw[50:150]))
    assert out[150 + 6] > 100 + 0.85 * 80


def test_reset_and_bad_timestamps():
    f = OneEuroFilter(1.0, 0.0)
    f.filter(np.array([0.0]), 1.0)
    out = f.filter(np.array([10.0]), 1.0)  # repeated timestamp: treated as one frame later
    assert 0 < out[0] < 10
    f.reset()
    assert f.value is None
    np.testing.assert_allclose(f.filter(np.array([10.0]), 0.5), [10.0])
