"""Scene cuts (offline/cuts.py) on small clips made from the shipped portraits: head motion,
however fast, is no cut; shots joined together, also similar-looking ones, are cut where
they meet. Through real video files and both users of the detector (evaluate's
``split_shots`` and animate's ``track_video``)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from live_fakes import write_mp4

from avatarify_app.errors import ConfigError
from avatarify_app.frames import load_image
from avatarify_app.offline.animation import track_video
from avatarify_app.offline.cuts import CutDetector, label_cuts
from avatarify_app.offline.reconstruction import split_shots
from avatarify_app.paths import AVATARS_DIR

FPS = 25.0


def portrait(name: str) -> np.ndarray:
    """A shipped avatar (a 256 aligned face crop)."""
    path = AVATARS_DIR / f"{name}.png"
    if not path.is_file():
        pytest.skip(f"{path} is not shipped here")
    return load_image(path)


def warp(image: np.ndarray, angle: float, scale: float, dx: float, dy: float) -> np.ndarray:
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    m[:, 2] += (dx, dy)
    return cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def smooth(image: np.ndarray, n: int, amount: float = 1.0) -> list[np.ndarray]:
    """A head turn, nod and zoom in ``n`` frames (12 degrees, 8 %, 10 px, times ``amount``)."""
    out = []
    for i in range(n):
        t = i / (n - 1)
        out.append(warp(image, amount * 12 * np.sin(2 * np.pi * t), 1 + amount * 0.08 * np.sin(3 * np.pi * t),
                        amount * 10 * np.sin(1.5 * np.pi * t), amount * 10 * np.sin(2.5 * np.pi * t)))
    return out


def talking(image: np.ndarray, n: int, seed: int) -> list[np.ndarray]:
    """A speaker's motion: slow sway, quick turns and nods easing in over 8 frames, a zoom
    burst, and a hand-held camera's shake (noise smoothed over ~3 frames, 1.5 px)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FPS
    angle, dx, dy = 5 * np.sin(2 * np.pi * t / 3.1), 14 * np.sin(2 * np.pi * t / 4.3 + 1), 6 * np.sin(2 * np.pi * t / 2.3)
    scale = 1 + 0.05 * np.sin(2 * np.pi * t / 5)

    def ease(start: int) -> np.ndarray:
        e = np.clip((np.arange(n) - start) / 8.0, 0, 1)
        return e * e * (3 - 2 * e)

    angle = angle + 18 * ease(n // 4) - 15 * ease(3 * n // 4)
    dy = dy + 20 * ease(n // 2)
    scale = scale * (1 + 0.12 * ease(2 * n // 3))
    kernel = np.exp(-0.5 * (np.arange(-9, 10) / 3.0) ** 2)
    shake = [np.convolve(rng.normal(0, 1, n + 18), kernel, "valid") for _ in range(2)]
    dx = dx + 1.5 * shake[0] / shake[0].std()
    dy = dy + 1.5 * shake[1] / shake[1].std()
    return [warp(image, *p) for p in zip(angle, scale, dx, dy, strict=True)]


def starts(shots: list[list[int]]) -> list[int]:
    return [s[0] for s in shots[1:]]


def near(found: list[int], true: list[int]) -> bool:
    """Every true cut found (one frame of slack) and nothing else."""
    return len(found) == len(true) and all(abs(f - t) <= 1 for f, t in zip(found, true, strict=True))


# ----------------------------------------------------------------------------- no cuts
@pytest.mark.parametrize("name", ["astronaut", "mona_lisa"])
def test_fast_smooth_head_motion_is_one_shot(tmp_path, name):
    """A head turning 24 degrees, zooming 16 % and moving 20 px in 40 frames: the old detector
    (thumbnail difference over a fixed threshold) cut the astronaut's into 32 shots."""
    video = write_mp4(tmp_path / "smooth.mp4", smooth(portrait(name), 40, amount=2.0), FPS)
    assert split_shots(video) == [list(range(40))]


@pytest.mark.parametrize(("name", "seed"), [("astronaut", 1), ("mona_lisa", 2)])
def test_continuous_talking_clip_is_one_shot(tmp_path, name, seed):
    video = write_mp4(tmp_path / "talking.mp4", talking(portrait(name), 100, seed), FPS)
    assert len(split_shots(video)) == 1


def test_demo_clip_is_one_shot():
    from avatarify_app.paths import ASSETS_DIR
    from avatarify_app.pipeline.video import iter_video

    demo = ASSETS_DIR / "demo" / "driving.mp4"
    if not demo.is_file():
        pytest.skip("the demo clip is not shipped here")
    found = [i for i, _f, cut in label_cuts(iter_video(demo, max_frames=150), FPS) if cut]
    assert found == [0]


# ----------------------------------------------------------------------------- cuts
def test_cuts_between_different_and_similar_looking_shots(tmp_path):
    astronaut, mona = portrait("astronaut"), portrait("mona_lisa")
    shots = [
        talking(astronaut, 30, 3),
        talking(mona, 30, 4),  # another person
        smooth(mona, 30),  # the same face; its fast motion starts again: a 14 px jump
        [warp(f, 15, 1, 0, 0) for f in smooth(mona, 30, amount=0.2)],  # the head 15 degrees over
        [np.ascontiguousarray(f[:, ::-1]) for f in talking(mona, 30, 5)],  # its mirror image
        [warp(f, 0, 1.5, 0, 30) for f in talking(mona, 30, 5)],  # closer
    ]
    frames = [f for s in shots for f in s]
    true = [30, 60, 90, 120, 150]
    video = write_mp4(tmp_path / "joined.mp4", frames, FPS)
    assert near(starts(split_shots(video)), true)


def test_a_cut_after_a_black_lead_in_and_a_short_shot(tmp_path):
    mona = portrait("mona_lisa")
    black = [np.zeros_like(mona)] * 2
    grey = [np.full_like(mona, 90)] * 4
    frames = black + talking(mona, 20, 6) + grey + talking(portrait("astronaut"), 20, 7)
    assert near(starts(split_shots(write_mp4(tmp_path / "lead.mp4", frames, FPS))), [2, 22, 26])


# ----------------------------------------------------------------------------- one detector, two users
def test_animate_and_evaluate_find_the_same_shots(tmp_path):
    frames = smooth(portrait("astronaut"), 30, amount=2.0) + talking(portrait("mona_lisa"), 30, 8)
    video = write_mp4(tmp_path / "two.mp4", frames, FPS)
    shots = split_shots(video)
    _items, _meta, ranges = track_video(video, no_crop=True)
    assert [list(r) for r in ranges] == shots
    assert near(starts(shots), [30])
    # --cuts off: one shot for both.
    assert split_shots(video, cuts="off") == [list(range(60))]
    assert [list(r) for r in track_video(video, no_crop=True, cuts="off")[2]] == [list(range(60))]


# ----------------------------------------------------------------------------- label_cuts itself
def test_label_cuts_yields_every_frame_once_in_order_with_its_answer():
    a, b = portrait("astronaut"), portrait("mona_lisa")
    frames = [warp(a, i, 1, 0, 0) for i in range(12)] + [warp(b, i, 1, 0, 0) for i in range(12)]
    out = list(label_cuts(iter(frames), FPS))
    assert [i for i, _f, _c in out] == list(range(24))
    assert all(f is frames[i] for i, f, _c in out)
    assert [i for i, _f, cut in out if cut] == [0, 12]
    assert [i for i, _f, cut in label_cuts(frames, FPS, "off") if cut] == [0]
    assert list(label_cuts([], FPS)) == []
    assert [c for _i, _f, c in label_cuts(frames[:1], FPS)] == [True]


def test_detector_answers_a_fixed_number_of_frames_late():
    a, b = portrait("astronaut"), portrait("mona_lisa")
    det = CutDetector(FPS)
    answers = [det.push(f) for f in [a] * 6 + [b] * 6]
    assert answers[6 + det.delay] == [6]
    assert [c for a in answers for c in a] == [6]


def test_unknown_mode_is_refused():
    with pytest.raises(ConfigError, match="--cuts"):
        list(label_cuts([np.zeros((8, 8, 3), np.uint8)], FPS, "sometimes"))
