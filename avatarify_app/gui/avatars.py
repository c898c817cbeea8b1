"""Re-export of ``avatarify_app.pipeline.avatar_store`` (avatar files, saved calibrations and
framing now live in the core, so ``live --headless`` uses them too). No Qt here."""

from avatarify_app.pipeline.avatar_store import (
    AVATAR_SIZE,
    MIRRORED_SUFFIX,
    Avatar,
    _calibration_path,  # noqa: F401 (tests/gui reach it)
    find_avatar,
    gallery_names,
    import_avatar,
    import_avatar_noted,
    list_avatars,
    load_calibration,
    load_framing,
    remove_avatar,
    save_calibration,
    save_framing,
    saved_crop,
)

__all__ = [
    "AVATAR_SIZE",
    "MIRRORED_SUFFIX",
    "Avatar",
    "find_avatar",
    "gallery_names",
    "import_avatar",
    "import_avatar_noted",
    "list_avatars",
    "load_calibration",
    "load_framing",
    "remove_avatar",
    "save_calibration",
    "save_framing",
    "saved_crop",
]
