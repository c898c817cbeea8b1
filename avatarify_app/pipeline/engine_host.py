"""The engine-host part of a session: the engine and the avatar it animates.

Runs on the inference thread (building, swapping, the avatar, live controls); the queries
(``engine``, ``avatar_crop``, ``config``, ``note``) are safe from any thread. The engine is
chosen through ``engines.REGISTRY.choose`` so the reasons for the choice ("auto" tried
these engines, skipped those) are known (``note``). The default factories import the
engines and the tracker lazily, so importing the pipeline stays cheap (and torch-free).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avatarify_app.config import EngineConfig, MotionOptions, TrackingConfig
from avatarify_app.errors import BadImageError
from avatarify_app.frames import as_frame, check_frame, read_image
from avatarify_app.tracking.crop import sharp_face, to_size

log = logging.getLogger(__name__)

Report = Callable[..., bool]
Reference = tuple[np.ndarray, np.ndarray | None]


def default_tracker_factory(tracking: TrackingConfig):
    from avatarify_app.tracking import StreamTracker

    return StreamTracker(tracking)


def default_aligner(image: np.ndarray, tracking: TrackingConfig):
    from avatarify_app.tracking import align_portrait

    return align_portrait(image, tracking)


def default_pose_match(a: np.ndarray, b: np.ndarray) -> float:
    from avatarify_app.tracking import pose_match

    return pose_match(a, b)


@dataclass(frozen=True)
class AlignedAvatar:
    """The aligned portrait (any square size), its landmarks in its px (or None), the file it
    came from (None for an array) and what the user should know about it
    (``tracking.AlignedFace.notes`` and the notes of reading the file)."""

    image: np.ndarray
    landmarks: np.ndarray | None
    path: Path | None = None
    notes: tuple[str, ...] = ()


# The avatar is kept at up to this side (px), cut from the photo itself: an engine that takes
# larger crops than the tracker's (LivePortrait: 512) gets the photo's own detail, not an
# enlarged 256 crop.
AVATAR_MAX_SIDE = 1024


def close_quietly(obj) -> None:
    try:
        obj.close()
    except Exception:
        log.exception("closing %r failed", obj)


class EngineHost:
    """Owns the engine, its config and note, the aligned avatar and its engine-size views.

    ``factory(config, motion)``: None = the engine registry (``REGISTRY.choose`` then
    ``REGISTRY.build``), else a callable that builds an engine (tests, other hosts).
    ``aligner(image, tracking)``: frames a portrait (``tracking.align_portrait``).
    """

    def __init__(self, config: EngineConfig, report: Report, *, factory: Callable | None = None,
                 aligner: Callable | None = None) -> None:
        self._config = config
        self._report = report
        self._factory = factory
        self._aligner = aligner or default_aligner
        self._engine: Any = None
        self._note: str | None = None
        self._avatar: AlignedAvatar | None = None
        self._avatar_crop: np.ndarray | None = None  # the avatar at the engine's size, read-only
        self._avatar_landmarks: np.ndarray | None = None  # its landmarks at the engine's size

    # ------------------------------------------------------------------ queries
    @property
    def engine(self) -> Any:
        return self._engine

    @property
    def config(self) -> EngineConfig:
        """The engine config asked for (``name`` may be "auto": ``note`` says what it chose)."""
        return self._config

    @property
    def note(self) -> str | None:
        return self._note

    @property
    def avatar(self) -> AlignedAvatar | None:
        return self._avatar

    @property
    def avatar_crop(self) -> np.ndarray | None:
        return self._avatar_crop

    @property
    def avatar_landmarks(self) -> np.ndarray | None:
        """The avatar's landmarks in the px of ``avatar_crop`` (engine size), or None."""
        return self._avatar_landmarks

    @property
    def size(self) -> int | None:
        size = getattr(self._engine, "size", None)
        return int(size) if size else None

    # ------------------------------------------- commands (inference thread only)
    def start(self, motion: MotionOptions, reference: Reference | None) -> bool:
        """Build the configured engine (at session start); False (reported) when it cannot be."""
        if self._engine is not None:
            return True
        built = self._build(self._config, motion, reference)
        if built is None:
            return False
        self._engine, self._note = built
        self._size_avatar()
        return True

    def set_engine(self, config: EngineConfig, motion: MotionOptions, reference: Reference | None) -> bool:
        """Swap to a new engine; the old one stays (and False) if the new one cannot be built."""
        built = self._build(config, motion, reference)
        if built is None:
            return False
        old = self._engine
        (self._engine, self._note), self._config = built, config
        self._size_avatar()
        if old is not None:
            close_quietly(old)
        return True

    def set_avatar(self, spec: str | Path | np.ndarray, tracking: TrackingConfig) -> bool:
        """Frame and use a new avatar; False (reported, the old one stays) when it cannot be."""
        try:
            path = None
            notes: tuple[str, ...] = ()
            if isinstance(spec, (str, Path)):
                path = Path(spec)
                loaded = read_image(path)
                image, notes = loaded.frame, loaded.notes
            else:
                try:
                    image = as_frame(spec)
                except (ValueError, TypeError) as err:
                    raise BadImageError(f"Not an image: {err}") from err
            aligned = self._aligner(image, tracking)
            face, face_lms = sharp_face(image, aligned, AVATAR_MAX_SIDE)
            avatar = AlignedAvatar(check_frame(face, "aligned avatar"), face_lms, path,
                                   (*notes, *getattr(aligned, "notes", ())))
            if self._engine is not None:
                face, lms = to_size(avatar.image, avatar.landmarks, self._engine.size)
                self._engine.set_source(face, lms)
        except Exception as err:
            self._report("avatar", err, key="set_avatar")
            return False
        self._avatar = avatar
        self._size_avatar()
        return True

    def set_motion(self, motion: MotionOptions) -> None:
        if self._engine is not None:
            try:
                self._engine.set_options(motion)
            except Exception as err:
                self._report("engine", err, key="set_options")

    def set_controls(self, values: Mapping[str, Any]) -> None:
        """Live engine options (``EngineOption.live``): to the engine when it takes them, and
        into the config so a rebuilt engine starts with them."""
        self._config = self._config.with_options(**dict(values))
        apply = getattr(self._engine, "set_controls", None)
        if apply is None:
            log.debug("engine %s has no live controls; %s kept for its next build",
                      getattr(self._engine, "name", None), sorted(values))
            return
        try:
            apply(dict(values))
        except Exception as err:
            self._report("engine", err, key="set_controls")

    def timings(self) -> dict[str, float]:
        """The engine's own per-stage ms of its last frame (``Engine.timings()``), if it has them."""
        timings = getattr(self._engine, "timings", None)
        if timings is None:
            return {}
        try:
            return {str(k): float(v) for k, v in dict(timings()).items()}
        except Exception as err:
            self._report("engine", err, key="timings")
            return {}

    def close(self) -> None:
        """Close the engine (at session stop); the avatar stays for the next start."""
        engine, self._engine = self._engine, None
        if engine is not None:
            try:
                engine.close()
            except Exception as err:
                self._report("engine", err, key="close")

    # ------------------------------------------------------------------ helpers
    def _build(self, config: EngineConfig, motion: MotionOptions, reference: Reference | None):
        """(engine with the current avatar and ``reference``, note), or None (reported)."""
        try:
            if self._factory is None:
                from avatarify_app.engines import REGISTRY

                choice = REGISTRY.choose(config)
                engine, note = REGISTRY.build(choice, motion), choice.explain()
            else:
                engine, note = self._factory(config, motion), None
        except Exception as err:
            self._report("engine", err, key="build")
            return None
        try:
            if self._avatar is not None:
                image, lms = to_size(self._avatar.image, self._avatar.landmarks, engine.size)
                engine.set_source(image, lms)
            if reference is not None:
                engine.set_reference(*to_size(*reference, engine.size))
        except Exception as err:
            self._report("engine", err, key="build")
            close_quietly(engine)
            return None
        return engine, note

    def _size_avatar(self) -> None:
        """Keep the avatar crop at the engine's size (one array per avatar and engine size)."""
        avatar = self._avatar
        if avatar is None:
            self._avatar_crop = self._avatar_landmarks = None
            return
        size = self.size
        image, lms = to_size(avatar.image, avatar.landmarks, size) if size else (avatar.image, avatar.landmarks)
        view = image.view()  # read-only for the observers, without locking the owner's array
        view.setflags(write=False)
        self._avatar_crop = view
        self._avatar_landmarks = None if lms is None else np.asarray(lms, np.float32)
