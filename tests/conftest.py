"""Shared fixtures: user settings isolated per test, leaked threads fail the test."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
MEDIA = SHARED / "media"
FOMM_SHARED = SHARED / "fomm"
LIVEPORTRAIT_SHARED = SHARED / "liveportrait"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own AVATARIFY_HOME so no user settings or caches leak in or out."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("AVATARIFY_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def no_leaked_threads():
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5.0
    while True:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon]
        leaked += [t for t in threading.enumerate()
                   if t not in before and t.is_alive() and t.name.startswith("avatarify")]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not leaked, f"threads left running: {[t.name for t in leaked]}"


@pytest.fixture
def shared_fomm() -> Path:
    if not (FOMM_SHARED / "small_vox.pth.tar").is_file():
        pytest.skip("../shared/fomm is not present (reference case only runs where it is)")
    return FOMM_SHARED


@pytest.fixture
def shared_liveportrait() -> Path:
    """../shared/liveportrait: keys.json (the released layout) and small_lp (a reference case)."""
    if not ((LIVEPORTRAIT_SHARED / "keys.json").is_file() and (LIVEPORTRAIT_SHARED / "small_lp" / "case.npz").is_file()):
        pytest.skip("../shared/liveportrait is not present (reference cases only run where it is)")
    return LIVEPORTRAIT_SHARED


@pytest.fixture
def media_dir() -> Path:
    if not MEDIA.is_dir():
        pytest.skip("../shared/media is not present")
    return MEDIA


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
