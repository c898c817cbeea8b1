"""Where the program finds and keeps files. Functions only: nothing is created at import."""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "avatarify_app"

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = PROJECT_ROOT / "assets"
AVATARS_DIR = ASSETS_DIR / "avatars"
CHECKPOINTS_DIR = PROJECT_ROOT / "checkpoints"


def user_data_dir() -> Path:
    """Platform-standard data folder (user avatars, calibrations). AVATARIFY_HOME overrides it."""
    override = os.environ.get("AVATARIFY_HOME")
    if override:
        return Path(override) / "data"
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def user_cache_dir() -> Path:
    """Platform-standard cache folder (exported ONNX graphs). AVATARIFY_HOME overrides it."""
    override = os.environ.get("AVATARIFY_HOME")
    if override:
        return Path(override) / "cache"
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def user_avatars_dir() -> Path:
    return user_data_dir() / "avatars"
