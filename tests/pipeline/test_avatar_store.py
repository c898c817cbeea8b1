"""Per-avatar memory (pipeline.avatar_store, used by the window): calibrations kept per camera orientation."""

from __future__ import annotations

import numpy as np

from avatarify_app.pipeline import avatar_store as store


def _crop(value: int) -> np.ndarray:
    return np.full((256, 256, 3), value, np.uint8)


def test_calibration_is_kept_per_mirror_setting(tmp_path):
    avatar = tmp_path / "me.png"
    lms = np.arange(936, dtype=np.float32).reshape(468, 2)
    store.save_calibration(avatar, _crop(10), lms, mirror=False)
    assert store.load_calibration(avatar, mirror=True) is None  # not valid for the flipped camera
    store.save_calibration(avatar, _crop(20), None, mirror=True)
    crop, got = store.load_calibration(avatar, mirror=False)
    assert crop[0, 0, 0] == 10 and np.array_equal(got, lms)
    crop, got = store.load_calibration(avatar, mirror=True)
    assert crop[0, 0, 0] == 20 and got is None


def test_a_calibration_without_a_mirror_flag_counts_as_unmirrored(tmp_path):
    avatar = tmp_path / "old.png"
    target = store._calibration_path(avatar, False)
    target.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(target, crop=_crop(30))  # as saved before the flag existed
    assert store.load_calibration(avatar, mirror=False)[0][0, 0, 0] == 30
    assert store.load_calibration(avatar, mirror=True) is None


def test_a_file_whose_flag_disagrees_is_ignored(tmp_path):
    avatar = tmp_path / "moved.png"
    store.save_calibration(avatar, _crop(40), None, mirror=True)
    store._calibration_path(avatar, True).replace(store._calibration_path(avatar, False))
    assert store.load_calibration(avatar, mirror=False) is None


def test_removing_an_avatar_forgets_both_calibrations(tmp_path):
    from avatarify_app import paths

    folder = paths.user_avatars_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "gone.png"
    path.write_bytes(b"png")
    for mirror in (False, True):
        store.save_calibration(path, _crop(50), None, mirror=mirror)
    store.save_framing(path, 1.1, 0.0, 0.0)
    store.remove_avatar(store.Avatar(path, builtin=False))
    assert not path.exists()
    assert store.load_calibration(path, False) is None and store.load_calibration(path, True) is None
    assert store.load_framing(path) is None


def test_find_avatar_takes_names_and_refuses_unusable_paths():
    assert store.find_avatar("astronaut") is not None
    assert store.find_avatar("no-such-portrait") is None
    assert store.find_avatar("x" * 5000) is None  # too long for the file system: not a crash
