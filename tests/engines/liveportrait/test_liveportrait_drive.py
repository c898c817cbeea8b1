"""The per-frame keypoint maths (drive.py) property by property, on tiny seeded networks:
relative vs absolute motion, animation regions, stitching, the multiplier, expression-friendly
re-anchoring, lip normalisation and the eye/mouth retargeting controls."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lp_engine_helpers import tiny_models
from lp_helpers import images

from avatarify_app.engines.liveportrait.drive import (
    EYE_ROWS,
    FOLLOW,
    LIP_ROWS,
    DriveSettings,
    KeypointDriver,
    Keypoints,
    compose,
)
from avatarify_app.engines.liveportrait.ratios import OpenRatios
from avatarify_app.motion import apply_stitching, retarget_eye, retarget_lip

SOURCE_RATIOS = OpenRatios(0.3, 0.28, 0.2)


@pytest.fixture(scope="module")
def parts():
    """(mlps, source, reference, two driving frames) as Keypoints from the tiny motion extractor."""
    models = tiny_models(seed=3)
    with torch.inference_mode():
        kps = [Keypoints.from_raw(models.motion_extractor(images(1, 64, seed=s))) for s in (1, 2, 3, 4)]
    return models.stitching_retargeting_module, *kps


def driver_for(parts, ratios=SOURCE_RATIOS, reference=True):
    mlps, source, ref, _, _ = parts
    driver = KeypointDriver(mlps)
    driver.set_source(source, ratios)
    driver.set_reference(ref if reference else None)
    return driver


PLAIN = DriveSettings(stitching=False)


def test_relative_motion_maps_the_reference_to_the_source(parts):
    driver = driver_for(parts)
    _, _source, ref, d1, _ = parts
    x = driver(ref, PLAIN)
    torch.testing.assert_close(x, driver.x_s, atol=1e-6, rtol=0)
    assert (driver(d1, PLAIN) - driver.x_s).abs().max() > 1e-2


def test_absolute_motion_ignores_the_reference_and_relative_needs_one(parts):
    _, source, _, d1, d2 = parts
    driver = driver_for(parts)
    absolute = PLAIN.changed(relative=False)
    x_a = driver(d1, absolute)
    driver.set_reference(d2)
    torch.testing.assert_close(driver(d1, absolute), x_a)
    assert (driver(d1, PLAIN) - x_a).abs().max() > 1e-3  # relative differs
    driver.set_reference(None)
    torch.testing.assert_close(driver(d1, absolute), x_a)
    with pytest.raises(ValueError, match="reference"):
        driver(d1, PLAIN)
    # absolute, "all": the driver's pose and translation, the source's scale
    expected = source.scale[..., None] * (source.kp @ d1.rotation + _abs_exp(source, d1)) + \
        torch.cat([d1.t[:, :2], torch.zeros_like(d1.t[:, 2:])], 1)[:, None]
    torch.testing.assert_close(x_a, expected, atol=1e-6, rtol=0)


def _abs_exp(source: Keypoints, driving: Keypoints) -> torch.Tensor:
    """The authors' absolute expression: source rows, with these rows/coordinates from the driver."""
    exp = source.exp.clone()
    for row in (1, 2, 6, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20):
        exp[:, row] = driving.exp[:, row]
    exp[:, 3:5, 1] = driving.exp[:, 3:5, 1]
    exp[:, 5, 2] = driving.exp[:, 5, 2]
    exp[:, 8, 2] = driving.exp[:, 8, 2]
    exp[:, 9, 1:] = driving.exp[:, 9, 1:]
    return exp


@pytest.mark.parametrize("relative", [True, False])
@pytest.mark.parametrize(("region", "rows"), [("lip", LIP_ROWS), ("eyes", EYE_ROWS)])
def test_lip_and_eye_regions_move_only_their_keypoints(parts, region, rows, relative):
    driver = driver_for(parts)
    _, _, _, d1, _ = parts
    x = driver(d1, PLAIN.changed(region=region, relative=relative))
    moved = (x - driver.x_s).abs().amax(dim=2)[0]
    others = [i for i in range(moved.shape[0]) if i not in rows]
    assert moved[list(rows)].max() > 1e-4
    assert moved[others].max() < 1e-6


def test_pose_region_keeps_the_expression_and_exp_region_the_pose(parts):
    driver = driver_for(parts)
    _, source, ref, d1, _ = parts
    pose = driver(d1, PLAIN.changed(region="pose"))
    rotation = d1.rotation @ ref.rotation.transpose(1, 2) @ source.rotation
    t = source.t + d1.t - ref.t
    expected = source.scale[..., None] * (source.kp @ rotation + source.exp) + \
        torch.cat([t[:, :2], torch.zeros_like(t[:, 2:])], 1)[:, None]
    torch.testing.assert_close(pose, expected, atol=1e-6, rtol=0)
    exp = driver(d1, PLAIN.changed(region="exp"))
    expected = source.scale[..., None] * (source.kp @ source.rotation + source.exp + d1.exp - ref.exp) + \
        torch.cat([source.t[:, :2], torch.zeros_like(source.t[:, 2:])], 1)[:, None]
    torch.testing.assert_close(exp, expected, atol=1e-6, rtol=0)
    everything = driver(d1, PLAIN)
    assert (everything - pose).abs().max() > 1e-4 and (everything - exp).abs().max() > 1e-4


def test_stitching_adds_the_stitching_network_offsets(parts):
    mlps = parts[0]
    driver = driver_for(parts)
    d1 = parts[3]
    plain = driver(d1, PLAIN)
    stitched = driver(d1, PLAIN.changed(stitching=True))
    with torch.inference_mode():
        torch.testing.assert_close(stitched, apply_stitching(mlps["stitching"], driver.x_s, plain))
    assert (stitched - plain).abs().max() > 1e-3
    no_mlps = KeypointDriver(None)
    no_mlps.set_source(parts[1], None)
    no_mlps.set_reference(parts[2])
    torch.testing.assert_close(no_mlps(d1, PLAIN.changed(stitching=True)), plain)  # no weights: no stitching


@pytest.mark.parametrize("stitching", [False, True])
def test_multiplier_scales_the_motion_about_the_source(parts, stitching):
    driver = driver_for(parts)
    d1 = parts[3]
    base = driver(d1, PLAIN.changed(stitching=stitching))
    for m in (0.0, 0.5, 1.7):
        x = driver(d1, PLAIN.changed(stitching=stitching, multiplier=m))
        torch.testing.assert_close(x - driver.x_s, (base - driver.x_s) * m, atol=1e-6, rtol=0)


def test_expression_friendly_reanchors_absolute_motion_on_the_source(parts):
    _, _source, ref, d1, _ = parts
    driver = driver_for(parts)
    friendly = PLAIN.changed(relative=False, expression_friendly=True)
    torch.testing.assert_close(driver(ref, friendly), driver.x_s, atol=1e-6, rtol=0)
    from scipy.spatial import ConvexHull

    absolute = PLAIN.changed(relative=False)
    x_r, x_1 = driver(ref, absolute), driver(d1, absolute)
    m = np.sqrt(ConvexHull(driver.x_s[0].double().numpy()).volume / ConvexHull(x_r[0].double().numpy()).volume)
    torch.testing.assert_close(driver(d1, friendly), driver.x_s + (x_1 - x_r) * float(m), atol=1e-5, rtol=0)


def test_lip_normalisation_closes_an_open_source_mouth_only(parts):
    mlps, _source, _ref, d1, _ = parts
    driver = driver_for(parts)
    base, normal = driver(d1, PLAIN), driver(d1, PLAIN.changed(normalize_lip=True))
    with torch.inference_mode():
        offsets = retarget_lip(mlps["lip"], driver.x_s, torch.tensor([[SOURCE_RATIOS.lip, 0.0]]))
    torch.testing.assert_close(normal, base + offsets, atol=1e-6, rtol=0)
    closed = driver_for(parts, ratios=OpenRatios(0.3, 0.28, 0.02))  # below the 0.03 threshold
    torch.testing.assert_close(closed(d1, PLAIN.changed(normalize_lip=True)), closed(d1, PLAIN))
    # absolute mode: not applied (as the authors)
    torch.testing.assert_close(driver(d1, PLAIN.changed(relative=False, normalize_lip=True)),
                               driver(d1, PLAIN.changed(relative=False)))


def test_eye_slider_retargets_the_eyes_and_follow_leaves_them_to_the_driver(parts):
    mlps, source, ref, d1, _ = parts
    driver = driver_for(parts)
    follow = driver(d1, PLAIN.changed(eye_open=FOLLOW))
    torch.testing.assert_close(follow, driver(d1, PLAIN))
    x = driver(d1, PLAIN.changed(eye_open=0.05))
    with torch.inference_mode():
        offsets = retarget_eye(mlps["eye"], driver.x_s, torch.tensor([[0.3, 0.28, 0.05]]))
    expected = compose(source, d1, ref, PLAIN, EYE_ROWS) + offsets
    torch.testing.assert_close(x, expected, atol=1e-6, rtol=0)
    # the driver's eye expression is gone: other driving frames change x only outside the eye rows
    # (plus the same offsets)
    x2 = driver(parts[4], PLAIN.changed(eye_open=0.05))
    assert (x2 - x).abs().max() > 1e-4
    assert (driver(d1, PLAIN.changed(eye_open=0.6)) - x).abs().max() > 1e-4  # the target matters


def test_mouth_slider_retargets_the_lips(parts):
    mlps, source, ref, d1, _ = parts
    driver = driver_for(parts)
    x = driver(d1, PLAIN.changed(mouth_open=0.4, normalize_lip=True))
    with torch.inference_mode():
        offsets = retarget_lip(mlps["lip"], driver.x_s, torch.tensor([[0.2, 0.4]]))
    torch.testing.assert_close(x, compose(source, d1, ref, PLAIN, LIP_ROWS) + offsets, atol=1e-6, rtol=0)


def test_retargeting_follows_the_drivers_measured_ratios(parts):
    mlps, source, ref, d1, _ = parts
    driver = driver_for(parts)
    driven = OpenRatios(0.1, 0.2, 0.35)
    settings = PLAIN.changed(retargeting=True)
    x = driver(d1, settings, driven)
    with torch.inference_mode():
        eye = retarget_eye(mlps["eye"], driver.x_s, torch.tensor([[0.3, 0.28, 0.15]]))  # mean of both eyes
        lip = retarget_lip(mlps["lip"], driver.x_s, torch.tensor([[0.2, 0.35]]))
    torch.testing.assert_close(x, compose(source, d1, ref, PLAIN, EYE_ROWS + LIP_ROWS) + eye + lip, atol=1e-6, rtol=0)
    # a slider set by the user wins over the driver; without measured ratios nothing is retargeted
    set_eye = driver(d1, settings.changed(eye_open=0.5), driven)
    with torch.inference_mode():
        eye5 = retarget_eye(mlps["eye"], driver.x_s, torch.tensor([[0.3, 0.28, 0.5]]))
    torch.testing.assert_close(set_eye, compose(source, d1, ref, PLAIN, EYE_ROWS + LIP_ROWS) + eye5 + lip,
                               atol=1e-6, rtol=0)
    torch.testing.assert_close(driver(d1, settings, None), driver(d1, PLAIN))


def test_retargeting_is_off_without_its_weights_or_the_source_ratios(parts):
    _, source, ref, d1, _ = parts
    for mlps, ratios in ((None, SOURCE_RATIOS), (parts[0], None)):
        driver = KeypointDriver(mlps)
        driver.set_source(source, ratios)
        driver.set_reference(ref)
        torch.testing.assert_close(driver(d1, PLAIN.changed(eye_open=0.5, mouth_open=0.5)), driver(d1, PLAIN))


def test_unknown_region_is_refused():
    with pytest.raises(ValueError, match="one of all, pose, exp, lip, eyes"):
        DriveSettings(region="nose")
