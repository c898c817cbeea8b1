"""Avatar files and what is remembered per avatar (calibration, framing), for the window, the
headless ``live`` command and any session (``Session(saved_calibrations=True)``).

Built-in portraits come from ``paths.AVATARS_DIR``; the user's own live in
``paths.user_avatars_dir()`` as aligned 256x256 PNGs. Per avatar, the calibration
(the session's reference: driving crop + landmarks) is kept as ``<key>.npz`` and the
framing (zoom/offset) as ``<key>.json`` under ``user_data_dir()/calibrations``.

A calibration belongs to one camera orientation: a mirrored reference is not the
un-mirrored one flipped (the mesh landmarks keep their left/right meaning, the picture
does not), so the mirrored camera has its own ``<key>-mirrored.npz``. Each file records
its ``mirror`` flag; a file from before that flag counts as un-mirrored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatarify_app import paths
from avatarify_app.config import CropConfig
from avatarify_app.errors import BadImageError
from avatarify_app.frames import IMAGE_SUFFIXES, read_image, resize, save_image

log = logging.getLogger(__name__)

AVATAR_SIZE = 256
MAX_KEPT_SIDE = 1024  # px on the long side of a kept photo (framing needs far less)
MIRRORED_SUFFIX = "-mirrored.npz"


@dataclass(frozen=True)
class Avatar:
    path: Path
    builtin: bool

    @property
    def name(self) -> str:
        return self.path.stem.replace("_", " ")


def _images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                  key=lambda p: p.name.lower())


def list_avatars() -> list[Avatar]:
    """Built-in portraits first, then the user's, each sorted by name."""
    builtin = [Avatar(p, True) for p in _images_in(paths.AVATARS_DIR)]
    user = [Avatar(p, False) for p in _images_in(paths.user_avatars_dir())]
    return builtin + user


def _name_key(text: str) -> str:
    return re.sub(r"[\s_-]+", " ", text).strip().lower()


def find_avatar(spec: str | Path) -> Path | None:
    """The portrait ``spec`` names: an existing file, or a gallery name ("astronaut",
    "Mona Lisa", "mona_lisa": its file name without the suffix, case, spaces and
    underscores not counting; the user's portraits win over built-in ones). None if neither.
    """
    path = Path(spec)
    try:
        if path.is_file():
            return path
    except OSError:  # a name too long for the file system, say: not a file we can use
        return None
    if path.parent != Path(".") or path.suffix.lower() in IMAGE_SUFFIXES:
        return None  # a path that does not exist is not a gallery name
    key = _name_key(str(spec))
    matches = [a.path for a in list_avatars() if _name_key(a.path.stem) == key]
    return matches[-1] if matches else None


def gallery_names() -> list[str]:
    """The names ``find_avatar`` knows, for a help text or an error message."""
    return [a.path.stem for a in list_avatars()]


def _unique_name(folder: Path, stem: str) -> Path:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_") or "avatar"
    candidate = folder / f"{stem}.png"
    n = 2
    while candidate.exists():
        candidate = folder / f"{stem}_{n}.png"
        n += 1
    return candidate


def import_portrait(source: str | Path) -> tuple[Path, tuple[str, ...]]:
    """Check that ``source`` is a photo with a face and keep a (bounded) copy among the user's
    portraits; returns the copy and what the user should know about how the photo was read
    (``frames.read_image``: EXIF orientation applied, scaled down, transparency flattened).
    The portrait is framed once, by the session that uses it. Slow (face detection): call it
    off the GUI thread. Raises ``BadImageError`` or ``NoFaceError`` saying what is wrong."""
    src = Path(source)
    if src.suffix.lower() not in IMAGE_SUFFIXES:
        raise BadImageError(f"{src.name} is not an image file.", f"Use one of: {', '.join(IMAGE_SUFFIXES)}.")
    loaded = read_image(src)
    image = loaded.frame
    from avatarify_app.tracking import PortraitAligner  # mediapipe: imported only when needed

    with PortraitAligner() as aligner:
        aligner.find_face(image)  # a face is there
    h, w = image.shape[:2]
    if max(h, w) > MAX_KEPT_SIDE:
        scale = MAX_KEPT_SIDE / max(h, w)
        image = resize(image, (max(1, round(w * scale)), max(1, round(h * scale))))
    folder = paths.user_avatars_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = _unique_name(folder, src.stem)
    save_image(target, image)
    log.info("added portrait %s -> %s", src, target)
    return target, loaded.notes


def remove_avatar(avatar: Avatar) -> None:
    """Delete a user avatar and what was remembered for it. Built-ins stay."""
    if avatar.builtin:
        raise BadImageError(f"{avatar.name} ships with the app and cannot be removed.",
                            "Only portraits you added can be removed.")
    avatar.path.unlink(missing_ok=True)
    for suffix in (".npz", MIRRORED_SUFFIX, ".json"):
        _memory_path(avatar.path, suffix).unlink(missing_ok=True)


# -- per-avatar memory -------------------------------------------------------------
def _memory_path(avatar_path: Path, suffix: str) -> Path:
    p = Path(avatar_path).resolve()
    digest = hashlib.sha1(str(p).encode("utf-8")).hexdigest()[:10]
    return paths.user_data_dir() / "calibrations" / f"{p.stem}-{digest}{suffix}"


def _calibration_path(avatar_path: Path, mirror: bool) -> Path:
    return _memory_path(avatar_path, MIRRORED_SUFFIX if mirror else ".npz")


def save_calibration(avatar_path: Path, crop: np.ndarray, landmarks: np.ndarray | None,
                     mirror: bool = False) -> Path:
    """Remember this reference for the avatar, for the camera mirrored (``mirror``) or not."""
    target = _calibration_path(avatar_path, mirror)
    target.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"crop": np.ascontiguousarray(crop, dtype=np.uint8), "saved_at": np.array(time.time()),
              "mirror": np.array(bool(mirror))}
    if landmarks is not None:
        arrays["landmarks"] = np.asarray(landmarks, np.float32)
    tmp = target.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(target)
    return target


def load_calibration(avatar_path: Path, mirror: bool = False) -> tuple[np.ndarray, np.ndarray | None] | None:
    """The (crop, landmarks) saved for this avatar and camera orientation, or None."""
    target = _calibration_path(avatar_path, mirror)
    if not target.is_file():
        return None
    try:
        with np.load(target, allow_pickle=False) as data:
            crop = np.ascontiguousarray(data["crop"], dtype=np.uint8)
            landmarks = np.asarray(data["landmarks"], np.float32) if "landmarks" in data else None
            saved_mirror = bool(data["mirror"]) if "mirror" in data else False
    except (OSError, ValueError, KeyError) as err:
        log.warning("ignoring unreadable calibration %s: %s", target, err)
        return None
    if crop.ndim != 3 or crop.shape[2] != 3 or saved_mirror != bool(mirror):
        return None
    return crop, landmarks


def save_framing(avatar_path: Path, zoom: float, offset_x: float, offset_y: float) -> None:
    target = _memory_path(avatar_path, ".json")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"zoom": zoom, "offset_x": offset_x, "offset_y": offset_y}))


def saved_crop(avatar_path: Path, crop: CropConfig | None = None) -> CropConfig:
    """``crop`` (default: the default framing) with the zoom and offsets saved for this avatar."""
    crop = crop or CropConfig()
    framing = load_framing(avatar_path)
    if framing is None:
        return crop
    zoom, offset_x, offset_y = framing
    return dataclasses.replace(crop, zoom=zoom, offset_x=offset_x, offset_y=offset_y)


def load_framing(avatar_path: Path) -> tuple[float, float, float] | None:
    target = _memory_path(avatar_path, ".json")
    if not target.is_file():
        return None
    try:
        d = json.loads(target.read_text())
        values = float(d["zoom"]), float(d["offset_x"]), float(d["offset_y"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        log.warning("ignoring unreadable framing %s: %s", target, err)
        return None
    if not all(math.isfinite(v) for v in values) or values[0] <= 0:
        log.warning("ignoring framing %s with values out of range: %s", target, values)
        return None
    return values
