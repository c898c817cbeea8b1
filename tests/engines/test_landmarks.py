"""LandmarkEngine on a real photo (the astronaut avatar, else scikit-image's) with real mediapipe."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from avatarify_app.config import EngineConfig, MotionOptions
from avatarify_app.engines import create_engine
from avatarify_app.engines.base import Engine
from avatarify_app.engines.landmarks.engine import LandmarkEngine
from avatarify_app.engines.landmarks.groups import FACE_OVAL_RING
from avatarify_app.errors import BadImageError, NoFaceError
from avatarify_app.paths import AVATARS_DIR


@pytest.fixture(scope="module")
def source() -> tuple[np.ndarray, np.ndarray]:
    from avatarify_app.frames import load_image
    from avatarify_app.tracking import align_portrait

    shipped = AVATARS_DIR / "astronaut.png"
    if shipped.is_file():
        image = load_image(shipped)
    else:
        from skimage import data

        image = np.ascontiguousarray(data.astronaut())
    aligned = align_portrait(image)
    return aligned.image, aligned.landmarks


@pytest.fixture
def engine(source):
    eng = LandmarkEngine.from_config(EngineConfig(name="landmarks"), MotionOptions())
    eng.set_source(*source)
    yield eng
    eng.close()


def _face_mask(landmarks: np.ndarray) -> np.ndarray:
    mask = np.zeros((256, 256), np.uint8)
    cv2.fillPoly(mask, [np.round(landmarks[list(FACE_OVAL_RING)]).astype(np.int32)], 1)
    return mask.astype(bool)


def _l1(a: np.ndarray, b: np.ndarray, where: np.ndarray | None = None) -> float:
    d = np.abs(a.astype(np.float32) - b.astype(np.float32)).mean(2) / 255.0
    return float(d[where].mean() if where is not None else d.mean())


def test_is_an_engine(engine):
    assert isinstance(engine, Engine)
    assert engine.name == "landmarks" and engine.size == 256
    assert create_engine(EngineConfig(name="landmarks")).name == "landmarks"


def test_driving_equal_to_reference_gives_the_source(engine, source):
    crop, lms = source
    engine.set_reference(crop, lms)
    out = engine.predict(crop, lms)
    assert out.dtype == np.uint8 and out.shape == crop.shape and out.flags.c_contiguous
    assert _l1(out, crop) < 0.004
    assert np.abs(engine.debug_info()["flow"]).max() < 0.5


def test_first_predicted_frame_becomes_the_reference(engine, source):
    crop, _ = source
    assert not engine.has_reference()
    out = engine.predict(crop)  # landmarks found by the engine itself
    assert engine.has_reference()
    assert _l1(out, crop) < 0.004


def test_affine_head_motion_moves_the_output_accordingly(engine, source):
    crop, lms = source
    engine.set_reference(crop, lms)
    m = cv2.getRotationMatrix2D((128.0, 110.0), 8.0, 1.05)
    m[:, 2] += (6.0, -4.0)
    driving = cv2.warpAffine(crop, m, (256, 256), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out = engine.predict(driving)
    moved_face = _face_mask(lms @ m[:, :2].T + m[:, 2])
    # The face lands where the driving face is: far closer than the still source.
    assert _l1(out, driving, moved_face) < 0.4 * _l1(crop, driving, moved_face)
    assert _l1(out, driving, moved_face) < 0.03
    dbg = engine.debug_info()
    head_src, head_out = dbg["kp_source"][-1], dbg["kp_output"][-1]
    expected = m[:, :2] @ head_src + m[:, 2]
    assert np.linalg.norm(head_out - expected) < 2.5
    assert dbg["flow"].shape == (256, 256, 2)
    assert dbg["masks"].shape[0] == len(dbg["kp_source"]) + 1 or dbg["masks"].shape[0] >= len(dbg["kp_source"])
    np.testing.assert_allclose(dbg["masks"].sum(0), 1.0, atol=1e-4)


def _person_moved(crop: np.ndarray, lms: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A driving crop where only the person moves (by the 2x3 affine ``m``) over the still
    background; returns (driving, source alpha, moved alpha)."""
    from avatarify_app.engines.landmarks.scene import Segmenter, person_alpha

    seg = Segmenter()
    try:
        alpha = person_alpha(seg.mask(crop), lms)
    finally:
        seg.close()
    moved = cv2.warpAffine(crop, m, (256, 256), borderMode=cv2.BORDER_REFLECT_101)
    a = cv2.warpAffine(alpha, m, (256, 256), borderMode=cv2.BORDER_REPLICATE)[..., None]
    driving = np.clip(moved * a + crop * (1.0 - a), 0, 255).astype(np.uint8)
    return driving, alpha, a[..., 0]


def _ring(width: int) -> np.ndarray:
    ring = np.ones((256, 256), bool)
    ring[width:-width, width:-width] = False
    return ring


def test_still_background_stays_put_the_person_moves_through_the_edge(engine, source):
    crop, lms = source
    engine.set_reference(crop, lms)
    m = cv2.getRotationMatrix2D((128.0, 110.0), -6.0, 1.0)
    m[:, 2] += (6.0, 10.0)
    driving, alpha, moved = _person_moved(crop, lms, m)
    out = engine.predict(driving)
    near = cv2.dilate(np.maximum(alpha, moved), np.ones((25, 25), np.uint8))
    bg = _ring(3) & (near < 0.05)  # border background, a little away from the person
    assert bg.sum() > 200
    assert _l1(out, crop, bg) < 0.01
    assert np.abs(engine.debug_info()["flow"][bg & _ring(1)]).max() < 0.5
    # The suit at the bottom edge moves down with the body instead of staying pinned there.
    suit = np.zeros((256, 256), bool)
    suit[-12:] = True
    suit &= (alpha > 0.95) & (moved > 0.95)
    assert suit.sum() > 300
    assert _l1(out, driving, suit) < 0.5 * _l1(crop, driving, suit)


def test_background_follows_a_moving_camera(engine, source):
    crop, lms = source
    engine.set_reference(crop, lms)
    for i in range(1, 6):  # the camera (or the tracker's crop) turns and pans a little each frame
        m = cv2.getRotationMatrix2D((128.0, 128.0), -1.0 * i, 1.0)
        m[:, 2] += (2.0 * i, 1.6 * i)
        driving = cv2.warpAffine(crop, m, (256, 256), borderMode=cv2.BORDER_REFLECT_101)
        out = engine.predict(driving)
    ring = _ring(16) & ~_ring(3)
    assert _l1(out, driving, ring) < 0.35 * _l1(crop, driving, ring)


def test_no_streaks_where_the_body_moves_at_the_edge(engine, source):
    """Streaks (the edge row stretched along the motion) vary across, not along, the motion;
    a squeezed band varies along it. The suit at the bottom edge keeps its texture's balance."""
    crop, lms = source

    def across_over_along(img: np.ndarray) -> float:  # bottom band, left half (the suit)
        band = img[-14:, :128].astype(np.float32)
        return float(np.abs(np.diff(band, axis=1)).mean() / (np.abs(np.diff(band, axis=0)).mean() + 1e-3))

    natural = across_over_along(crop)
    for dy in (-12.0, 12.0):  # the person rises (the suit enters from below), then sinks
        engine.set_reference(crop, lms)
        driving, _, _ = _person_moved(crop, lms, np.float32([[1, 0, 0], [0, 1, dy]]))
        ratio = across_over_along(engine.predict(driving))
        assert 0.65 * natural < ratio < 1.35 * natural, (dy, ratio, natural)


def test_mouth_opening_has_no_fold_and_darkens(engine, source):
    crop, lms = source
    engine.set_reference(crop, lms)
    drv = lms.copy()
    lower = [146, 91, 181, 84, 17, 314, 405, 321, 375, 95, 88, 178, 87, 14, 317, 402, 318, 324,
             152, 148, 176, 149, 150, 377, 400, 378, 379]
    drv[lower, 1] += 14.0  # jaw and lower lip drop
    out = engine.predict(crop, drv)
    flow = engine.debug_info()["flow"]
    cx = int(np.rint((lms[13, 0] + lms[14, 0]) / 2))
    y0, y1 = int(lms[0, 1]) - 5, int(lms[17, 1]) + 20
    map_y = np.arange(256, dtype=np.float32)[y0:y1] + flow[y0:y1, cx, 1]
    assert np.all(np.diff(map_y) > -0.05), "the backward map folds inside the mouth"
    inner = np.round(drv[[13, 14]].mean(0)).astype(int)
    assert out[inner[1], inner[0]].mean() < crop[int(lms[13, 1]), int(lms[13, 0])].mean()
    assert np.isfinite(flow).all()


def test_wild_landmarks_give_a_sane_frame(engine, source, rng):
    crop, lms = source
    engine.set_reference(crop, lms)
    for scale in (3.0, 40.0):
        noisy = (lms + rng.normal(0, scale, lms.shape)).astype(np.float32)
        out = engine.predict(crop, noisy)
        assert out.shape == crop.shape and out.dtype == np.uint8
        assert np.isfinite(engine.debug_info()["flow"]).all()
    engine.set_options(MotionOptions(relative=False, adapt_scale=False))
    out = engine.predict(crop, lms * 0.8 + 20)
    assert out.shape == crop.shape


def test_no_face_raises_a_clear_error(engine):
    blank = np.full((256, 256, 3), 127, np.uint8)
    fresh = LandmarkEngine()
    try:
        with pytest.raises(NoFaceError, match="No face found in the source"):
            fresh.set_source(blank)
    finally:
        fresh.close()
    with pytest.raises(NoFaceError, match="driving"):
        engine.predict(blank)
    with pytest.raises(BadImageError):
        engine.predict(np.zeros((100, 100, 3), np.uint8))


def test_weighted_similarity_ignores_zero_weight_outliers(rng):
    from avatarify_app.engines.landmarks.motion import fit_similarity

    a = rng.normal(0, 30, (40, 2))
    m = cv2.getRotationMatrix2D((0.0, 0.0), 7.0, 1.1)
    b = a @ m[:, :2].T + (3.0, -2.0)
    b[:5] += 50.0  # outliers
    w = np.ones(40)
    w[:5] = 0.0
    sim = fit_similarity(a, b, w)
    np.testing.assert_allclose(sim.A, m[:, :2], atol=1e-9)
    np.testing.assert_allclose(sim.b, (3.0, -2.0), atol=1e-9)
    assert np.abs(fit_similarity(a, b).b - (3.0, -2.0)).max() > 1.0


def test_background_dead_zone_and_edge_extension():
    from avatarify_app.engines.landmarks.motion import Similarity
    from avatarify_app.engines.landmarks.scene import extend, soften

    c = np.array([127.5, 127.5])
    assert soften(Similarity(np.eye(2), np.array([0.6, 0.5])), c, 1.0, 128.0) is None  # noise: nothing
    moved = soften(Similarity(np.eye(2), np.array([3.0, 4.0])), c, 1.0, 128.0)
    np.testing.assert_allclose(moved.apply(c[None])[0] - c, (2.4, 3.2), atol=1e-9)  # 5 px -> 4 px
    image = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    for fill in ("soft", "smear", "reflect", "replicate"):
        big = extend(image, 8, fill)
        assert big.shape == (48, 48, 3) and big.dtype == np.uint8
        np.testing.assert_array_equal(big[8:-8, 8:-8], image)
    np.testing.assert_array_equal(extend(image, 8, "replicate")[:8, 8:-8], np.repeat(image[:1], 8, axis=0))
    # "soft": far past the edge only the blurred mirror is left (no sharp detail to streak or mirror).
    soft = extend(image, 8, "soft").astype(np.float32)
    assert np.abs(np.diff(soft[:2, 8:-8], axis=1)).mean() < 0.25 * np.abs(np.diff(image.astype(np.float32), axis=1)).mean()


def test_smear_continues_the_edge_colours_not_a_mirror_image():
    from avatarify_app.engines.landmarks.scene import extend

    image = np.zeros((32, 32, 3), np.uint8)
    image[..., 2] = 255  # blue ...
    image[:2] = (255, 0, 0)  # ... with a red top edge (hair touching the crop's top)
    big = extend(image, 8, "smear")
    assert big.shape == (48, 48, 3)
    np.testing.assert_array_equal(big[8:-8, 8:-8], image)
    far = big[0, 16:-16].astype(np.float32).mean(0)
    assert far[0] > 240 and far[2] < 15, far  # the edge's own colour, no mirrored blue interior
    mirrored = extend(image, 8, "soft")[0, 16:-16].astype(np.float32).mean(0)
    assert mirrored[2] > 60  # (the mirror brings the interior back past the edge)


def test_revealed_edges_show_background_above_the_head_and_the_body_below(source):
    """Hair cut off by the crop's top: when the head moves down, what is revealed above it is
    background (no second, mirrored copy of the hair); the body cut off by the bottom edge:
    when it moves up, the bottom keeps the edge's colours (no grey band of the mirrored,
    blurred helmet ring)."""
    crop, lms = source
    z = cv2.getRotationMatrix2D((128.0, 150.0), 0.0, 1.25)  # a tighter crop: the hair touches the top
    tight = cv2.warpAffine(crop, z, (256, 256), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    tight_lms = (lms @ z[:, :2].T + z[:, 2]).astype(np.float32)
    hair = tight[:4].astype(np.float32).mean((0, 2)) < 140
    bg = tight[:4].astype(np.float32).mean((0, 2)) > 170
    assert hair.sum() > 40 and bg.sum() > 40
    eng = LandmarkEngine()
    try:
        eng.set_source(tight, tight_lms)
        eng.set_reference(tight, tight_lms)
        down = np.float32([[1, 0, 0], [0, 1, 22.0]])
        driving, _, _ = _person_moved(tight, tight_lms, down)
        out = eng.predict(driving, tight_lms + np.float32([0.0, 22.0])).astype(np.float32)
        above = out[:8, hair].mean()
        assert above > 0.5 * (tight[:8, hair].mean() + tight[:8, bg].mean()), above

        eng.set_source(crop, lms)
        eng.set_reference(crop, lms)
        up = np.float32([[1, 0, 0], [0, 1, -22.0]])
        driving, _, _ = _person_moved(crop, lms, up)
        out = eng.predict(driving, lms + np.float32([0.0, -22.0]))
        assert _l1(out[-10:], np.repeat(crop[-1:], 10, axis=0)) < 0.1
    finally:
        eng.close()


def _closed_lids(lms: np.ndarray) -> np.ndarray:
    """The landmarks with each upper lid lowered onto its lower lid (a blink)."""
    from avatarify_app.engines.landmarks import groups as lg

    out = lms.copy()
    for ring, corners in ((lg.RIGHT_EYE_RING, lg.RIGHT_EYE_CORNERS), (lg.LEFT_EYE_RING, lg.LEFT_EYE_CORNERS)):
        half = list(ring).index(corners[1])
        upper, lower = list(ring[1:half]), [*ring[half:], ring[0]]
        order = np.argsort(lms[lower, 0])
        lower_x, lower_y = lms[lower, 0][order], lms[lower, 1][order]
        out[upper, 1] = np.interp(lms[upper, 0], lower_x, lower_y) - 0.5
    return out


def _iris_pixels(image: np.ndarray, lms: np.ndarray) -> int:
    """Dark pixels (iris, pupil, lashes of an open eye) inside both source eye contours."""
    from avatarify_app.engines.landmarks import groups as lg

    mask = np.zeros((256, 256), np.uint8)
    for ring in (lg.RIGHT_EYE_RING, lg.LEFT_EYE_RING):
        cv2.fillPoly(mask, [np.round(lms[list(ring)]).astype(np.int32)], 1)
    return int((image.astype(np.float32).mean(2)[mask > 0] < 90).sum())


def test_eyes_blink_and_open_again(engine, source):
    """Lids a few px apart are below the coarse flow grid's reach: a closed driving eye must
    still close the avatar's eye (iris and pupil covered by the lowered lid's skin), and the
    next open frame gives the source back."""
    crop, lms = source
    engine.set_reference(crop, lms)
    iris = _iris_pixels(crop, lms)
    assert iris > 40
    closed = engine.predict(crop, _closed_lids(lms))
    assert _iris_pixels(closed, lms) < 0.4 * iris, (_iris_pixels(closed, lms), iris)
    # Outside the eyes and their lids nothing changes.
    far = ~cv2.dilate(_eye_box_mask(lms), np.ones((9, 9), np.uint8)).astype(bool)
    assert _l1(closed, crop, far) < 0.004
    reopened = engine.predict(crop, lms)
    assert _l1(reopened, crop) < 0.004


def _eye_box_mask(lms: np.ndarray) -> np.ndarray:
    """Both eyes with the skin above them up to the brows (what a blink may move)."""
    from avatarify_app.engines.landmarks import groups as lg

    mask = np.zeros((256, 256), np.uint8)
    for ring, brow in ((lg.RIGHT_EYE_RING, (70, 63, 105, 66, 107)), (lg.LEFT_EYE_RING, (300, 293, 334, 296, 336))):
        pts = np.round(np.vstack([lms[list(ring)], lms[list(brow)]])).astype(np.int32)
        cv2.fillConvexPoly(mask, cv2.convexHull(pts), 1)
    return mask
