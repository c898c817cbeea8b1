"""What one replica of the server does, without Ray: avatars, engines and client sessions.

- Avatars are stored by content id (``wire.content_id`` of the decoded pixels and landmarks) in
  a bounded store; an avatar is *prepared* (``Prepared``: an engine with it as the source) on
  demand. Ray Serve's model multiplexing (``app.py``) keeps the prepared ones per replica and
  routes requests naming an avatar to a replica that has it.
- A client session (``SessionState``: reference, motion options, live controls) belongs to
  the client; several sessions may share one prepared avatar. Before a frame, the engine is
  switched to that frame's session (``Prepared.bind``) when another one used it last.
- Engines run on one inference thread per replica (``Service.call``), which owns them.
  ``run_frames`` animates a list of frames (a batch from ``@serve.batch``) in order.

Everything a client sends is checked (``wire``); a bad request raises ``wire.WireError`` (or a
``NoFaceError``/``BadImageError`` from the engine) and never takes the replica down.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from avatarify_app.config import EngineConfig, MotionOptions
from avatarify_app.engines import REGISTRY
from avatarify_app.engines.remote import wire
from avatarify_app.errors import BadImageError, ConfigError, NoFaceError
from avatarify_app.tracking.crop import to_size

log = logging.getLogger(__name__)


# Landmarks as they arrive: a JSON list of [x, y], or (bytes, count) from a binary message, or None.
Landmarks = list | tuple[bytes, int | None] | None


def parse_landmarks(value: Landmarks, side: int) -> np.ndarray | None:
    if isinstance(value, tuple):
        return wire.landmarks_from_bytes(value[0], value[1], side)
    return wire.landmarks_from_json(value, side)


class Evicted(wire.WireError):
    status = 409
    code = "evicted"


class UnknownAvatar(wire.WireError):
    status = 404
    code = "unknown_avatar"


class UnknownReference(wire.WireError):
    status = 409
    code = "unknown_reference"


@dataclass(frozen=True)
class ServedAvatar:
    """An uploaded avatar: the aligned crop (any square size) and its landmarks in its pixels."""

    id: str
    image: np.ndarray
    landmarks: np.ndarray | None

    @property
    def nbytes(self) -> int:
        return self.image.nbytes + (0 if self.landmarks is None else self.landmarks.nbytes)


class ContentStore:
    """Content-addressed items, least recently used dropped first (by count and bytes)."""

    def __init__(self, max_items: int, max_bytes: int) -> None:
        self.max_items, self.max_bytes = max_items, max_bytes
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, key: str, item: Any, nbytes: int) -> None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return
            self._items[key] = (item, nbytes)
            self._bytes += nbytes
            while len(self._items) > self.max_items or (self._bytes > self.max_bytes and len(self._items) > 1):
                _key, (_item, size) = self._items.popitem(last=False)
                self._bytes -= size

    def get(self, key: str) -> Any | None:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            self._items.move_to_end(key)
            return found[0]

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


@dataclass
class SessionState:
    """A client's part of the animation: its reference, motion options and live controls.

    ``reference`` None means "pending": the engine takes the session's next frame as the
    reference and the session keeps it (``adopt``). Any other change makes a new ``version``.
    """

    key: str = field(default_factory=lambda: uuid.uuid4().hex)
    version: int = 0
    reference: tuple[np.ndarray, np.ndarray | None] | None = None
    motion: MotionOptions = field(default_factory=MotionOptions)
    controls: dict[str, Any] = field(default_factory=dict)

    def changed(self, **values: Any) -> None:
        for name, value in values.items():
            setattr(self, name, value)
        self.version += 1


class Prepared:
    """One engine with one avatar as its source (a Serve multiplexed "model")."""

    def __init__(self, service: Service, avatar: ServedAvatar, engine: Any) -> None:
        self.service = service
        self.avatar = avatar
        self.engine = engine
        self.owner: tuple[str, int] | None = None  # the session state the engine holds now
        self._released = False

    def bind(self, state: SessionState) -> None:
        """Give the engine this session's reference, options and controls (inference thread)."""
        key = (state.key, state.version)
        if self.owner == key:
            return
        engine = self.engine
        self.owner = None
        engine.set_options(state.motion)
        if state.reference is None:
            engine.set_reference(None)
        else:
            image, lms = to_size(*state.reference, engine.size)
            engine.set_reference(image, lms)
        controls = {**self.service.control_defaults, **state.controls}
        if controls and hasattr(engine, "set_controls"):
            engine.set_controls(controls)
        self.owner = key

    @property
    def released(self) -> bool:
        return self._released

    def release(self) -> None:
        """Give the engine back (Serve unloaded this avatar); frames still queued for it fail."""
        if not self._released:
            self._released = True
            self.service.retire(self.engine)

    def __del__(self) -> None:  # Serve calls it when it unloads the model (LRU); idempotent
        self.release()


@dataclass
class FrameJob:
    """One frame to animate: its session, the prepared avatar, the encoded crop."""

    prepared: Prepared
    state: SessionState
    data: bytes
    landmarks: bytes
    landmark_count: int | None
    fmt: str = "jpeg"
    quality: int = wire.DEFAULT_QUALITY
    seq: int = 0
    t_received: float = field(default_factory=time.perf_counter)


@dataclass
class FrameResult:
    seq: int
    data: bytes | None
    fmt: str
    engine_ms: float
    error: Exception | None = None


class Service:
    """The engines of one replica and the thread they run on."""

    def __init__(self, config: EngineConfig, *, random_weights: bool = False, max_avatars: int = 64,
                 max_avatar_bytes: int = 512 * 1024 * 1024, max_spares: int = 1,
                 factory: Callable[[EngineConfig, MotionOptions], Any] | None = None) -> None:
        spec = REGISTRY.get(config.name) if config.name != "auto" else None
        if spec is None or not spec.local:
            raise ConfigError(f"The server needs an engine of its own machine, not {config.name!r}.")
        self.spec = spec
        self.config = REGISTRY.checked(config)
        self._factory = factory or (spec.bench_factory if random_weights and spec.bench_factory else spec.factory)
        self.random_weights = random_weights
        self.control_defaults = {o.name: o.default for o in spec.options if o.live and o.default is not None}
        self.avatars = ContentStore(max_avatars, max_avatar_bytes)
        self.references = ContentStore(256, 64 * 1024 * 1024)
        self._spares: list[Any] = []
        self._max_spares = max_spares
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="avatarify-serve-infer")
        self._closed = False
        # The first engine: fails here (before the replica counts as up) when it cannot be built.
        first = self._pool.submit(self._new_engine).result()
        self.size = int(first.size)
        self.device = str(first.device)
        self.engine_name = str(getattr(first, "name", spec.name))
        self._spares.append(first)
        self.frames = self.batches = self.max_batch = 0

    # ----------------------------------------------------------------- threads
    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` on the inference thread."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        def close_spares() -> None:
            spares, self._spares = self._spares, []
            for engine in spares:
                _close_quietly(engine)

        self._pool.submit(close_spares)
        self._pool.shutdown(wait=True)

    def _new_engine(self) -> Any:
        engine = self._factory(self.config, MotionOptions())
        log.info("engine %s on %s", getattr(engine, "name", "?"), getattr(engine, "device", "?"))
        return engine

    def retire(self, engine: Any) -> None:
        """An engine whose avatar was unloaded: kept as a spare (its next avatar replaces the source),
        or closed; either on the inference thread, after the frames queued before."""
        if self._closed:
            return
        try:
            self._pool.submit(self._retire, engine)
        except RuntimeError:  # shut down meanwhile
            pass

    def _retire(self, engine: Any) -> None:
        if len(self._spares) < self._max_spares:
            self._spares.append(engine)
        else:
            _close_quietly(engine)

    # ----------------------------------------------------------------- avatars (event loop)
    def add_avatar(self, data: bytes, landmarks: Landmarks = None, *,
                   max_bytes: int = wire.MAX_AVATAR_BYTES) -> ServedAvatar:
        """Decode and store an uploaded avatar (a square face crop); its id is its content hash."""
        image = wire.decode_image(data, max_bytes=max_bytes, square=True)
        lms = parse_landmarks(landmarks, image.shape[0])
        avatar = ServedAvatar(wire.content_id(image, lms), image, lms)
        self.avatars.put(avatar.id, avatar, avatar.nbytes)
        return avatar

    def avatar(self, avatar_id: str) -> ServedAvatar:
        found = self.avatars.get(wire.check_id(avatar_id))
        if found is None:
            raise UnknownAvatar(f"This server has no avatar {avatar_id[:12]}... (restarted, or it was evicted).",
                                "Upload it again (the app does this by itself).")
        return found

    def add_reference(self, data: bytes, landmarks: Landmarks = None) -> tuple[str, tuple]:
        """Decode and keep a reference crop (for one-shot HTTP frames that name it by id later)."""
        image = wire.decode_image(data, square=True)
        lms = parse_landmarks(landmarks, image.shape[0])
        ref_id = wire.content_id(image, lms, kind="reference")
        self.references.put(ref_id, (image, lms), image.nbytes)
        return ref_id, (image, lms)

    def reference(self, ref_id: str) -> tuple:
        found = self.references.get(wire.check_id(ref_id, "reference"))
        if found is None:
            raise UnknownReference(f"This server has no reference {ref_id[:12]}...", "Send the reference image again.")
        return found

    # ----------------------------------------------------------------- inference thread
    def prepare(self, avatar: ServedAvatar) -> Prepared:
        """An engine with ``avatar`` as its source (a spare one when there is one)."""
        engine = self._spares.pop() if self._spares else self._new_engine()
        try:
            image, lms = to_size(avatar.image, avatar.landmarks, engine.size)
            engine.set_source(image, lms)
        except Exception:
            self.retire(engine)
            raise
        return Prepared(self, avatar, engine)

    def run_frames(self, jobs: list[FrameJob]) -> list[FrameResult]:
        """Animate ``jobs`` in order (one batch); a failing frame fails alone."""
        self.batches += 1
        self.max_batch = max(self.max_batch, len(jobs))
        return [self._run_one(job) for job in jobs]

    def _run_one(self, job: FrameJob) -> FrameResult:
        t0 = time.perf_counter()
        try:
            if job.prepared.released:
                raise Evicted("The avatar was unloaded while this frame waited.", "Send the next frame.")
            engine = job.prepared.engine
            image = wire.decode_image(job.data, square=True)
            lms = wire.landmarks_from_bytes(job.landmarks, job.landmark_count, image.shape[0])
            image, lms = to_size(image, lms, engine.size)
            job.prepared.bind(job.state)
            out = engine.predict(image, lms)
            if job.state.reference is None and engine.has_reference():
                job.state.reference = (image, lms)  # the engine took this frame: the session keeps it
            data = wire.encode_image(out, job.fmt, job.quality)
            self.frames += 1
            return FrameResult(job.seq, data, job.fmt, (time.perf_counter() - t0) * 1000.0)
        except (wire.WireError, NoFaceError, BadImageError) as err:
            return FrameResult(job.seq, None, job.fmt, 0.0, err)
        except Exception as err:  # an engine failure fails this frame, not the replica
            log.exception("frame %d failed", job.seq)
            return FrameResult(job.seq, None, job.fmt, 0.0, err)

    def info(self) -> dict[str, Any]:
        return {"protocol": wire.PROTOCOL, "engine": self.engine_name, "device": self.device, "size": self.size,
                "random_weights": self.random_weights, "avatars": len(self.avatars),
                "formats": list(wire.FORMATS), "max_avatar_bytes": wire.MAX_AVATAR_BYTES,
                "max_message_bytes": wire.MAX_MESSAGE_BYTES, "max_side": wire.MAX_WIRE_SIDE,
                "frames": self.frames, "batches": self.batches, "max_batch": self.max_batch}


def _close_quietly(engine: Any) -> None:
    try:
        engine.close()
    except Exception:
        log.exception("closing an engine failed")
