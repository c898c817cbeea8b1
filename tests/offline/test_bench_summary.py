"""The bench summary's statistics (the numbers the README and the notes quote)."""

from __future__ import annotations

import pytest

from avatarify_app.offline.bench import BenchResult


@pytest.mark.parametrize("total", [[5106.0, 6018.0], [10.0, 12.0, 30.0], [7.0] * 5, list(range(1, 101))])
def test_the_p95_lies_between_the_median_and_the_slowest_frame(total):
    s = BenchResult(stages={"engine": list(total)}, total=list(total)).summary()
    assert s["ms_per_frame"] <= s["ms_per_frame_p95"] <= max(total)
    assert s["frames"] == len(total)
    assert s["ms_per_frame_mean"] == pytest.approx(sum(total) / len(total), abs=1e-3)


def test_two_frames_give_a_p95_near_the_slower_one():
    s = BenchResult(stages={}, total=[5106.0, 6018.0]).summary()
    assert s["ms_per_frame"] == pytest.approx(5562.0)
    assert s["ms_per_frame_p95"] == pytest.approx(5106.0 + 0.95 * 912.0, abs=1e-3)
