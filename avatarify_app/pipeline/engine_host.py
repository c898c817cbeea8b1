"""The engine and the avatar on the inference thread: building and swapping engines, aligning avatars.

The default factories import the engines and the tracker lazily, so importing the pipeline
stays cheap (and torch-free) until a session starts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatarify_app.config import EngineConfig, TrackingConfig
from avatarify_app.errors import BadImageError
from avatarify_app.frames import as_frame, check_frame, read_image
from avatarify_app.tracking.crop import to_size

log = logging.getLogger(__name__)


def default_engine_factory(config: EngineConfig, motion):
    from avatarify_app.engines import create_engine

    return create_engine(config, motion)


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
class Avatar:
    """The aligned portrait (any square size), its landmarks in its px (or None), and what the
    user should know about it (``tracking.AlignedFace.notes``)."""

    image: np.ndarray
    landmarks: np.ndarray | None
    notes: tuple[str, ...] = ()


def close_quietly(obj) -> None:
    try:
        obj.close()
    except Exception:
        log.exception("closing %r failed", obj)


class EngineHost:
    """``Session``'s engine and avatar handling (a mixin: it works on the session's own state)."""

    def _build_engine(self, config: EngineConfig):
        """A new engine with the current avatar and reference, or None (reported)."""
        try:
            engine = self._engine_factory(config, self._applied.motion)
        except Exception as err:
            self._report("engine", err)
            return None
        try:
            if self._avatar is not None:
                image, lms = to_size(self._avatar.image, self._avatar.landmarks, engine.size)
                engine.set_source(image, lms)
            if self._reference is not None:
                crop, lms = to_size(*self._reference, engine.size)
                engine.set_reference(crop, lms)
        except Exception as err:
            self._report("engine", err)
            close_quietly(engine)
            return None
        return engine

    def _apply_engine(self, config: EngineConfig) -> None:
        engine = self._build_engine(config)
        if engine is None:
            return
        old, self._engine = self._engine, engine
        self._size_avatar()
        self.engine_config = config
        self._held = None
        if old is not None:
            close_quietly(old)

    def _apply_avatar(self, spec: str | Path | np.ndarray) -> None:
        try:
            notes: tuple[str, ...] = ()
            if isinstance(spec, (str, Path)):
                loaded = read_image(spec)
                image, notes = loaded.frame, loaded.notes
            else:
                try:
                    image = as_frame(spec)
                except (ValueError, TypeError) as err:
                    raise BadImageError(f"Not an image: {err}") from err
            aligned = self._aligner(image, self.tracking)
            avatar = Avatar(check_frame(aligned.image, "aligned avatar"), aligned.landmarks,
                            (*notes, *getattr(aligned, "notes", ())))
            if self._engine is not None:
                face, lms = to_size(avatar.image, avatar.landmarks, self._engine.size)
                self._engine.set_source(face, lms)
        except Exception as err:
            self._report("avatar", err)
            return
        self._avatar = avatar
        self._size_avatar()
        self._held = None

    def _size_avatar(self) -> None:
        """Keep the avatar crop at the engine's size (one array per avatar and engine size)."""
        avatar = self._avatar
        if avatar is None:
            self._avatar_crop = None
            return
        size = getattr(self._engine, "size", None)
        image = to_size(avatar.image, None, int(size))[0] if size else avatar.image
        view = image.view()  # read-only for the observers, without locking the owner's array
        view.setflags(write=False)
        self._avatar_crop = view
