"""The one family of test fakes for the live pipeline: tracker, engine, aligner, frame source,
virtual camera backend, the Session wiring that builds them, test videos and ``wait_for``.

Imported by name (``from live_fakes import Fakes``): pytest puts ``tests/`` on ``sys.path`` for
``tests/conftest.py`` (the name is unique so it cannot be confused with a folder's own helpers).

Two kinds of run share these fakes; ``Fakes(coded=...)`` picks one:

- coded (the pipeline tests): frames carry their index in their colour (``coded_frame``), so
  order survives any resize. Crops are ``CODED_SIZE`` px, the tracker's landmarks are the
  frame's code at every point, the avatar's are 10 everywhere and the pose match is
  ``1 / (1 + |code - 10|)``; engines return the driving crop (the output carries the code), are
  named "fake" whatever was asked for and have no live controls.
- face (the GUI tests): ``FACE_SIZE`` px crops, a face-like point cloud that sways with the
  frame's brightness, the real pose match unless ``pose_match`` is set; engines return the
  avatar tinted by the driving crop, are named after the engine asked for ("auto" resolved as
  the registry would) and take live controls and report timings (``ControlledEngine``).

In both, an all-black frame has no face (the tracker finds none, the aligner and engines refuse
a black avatar) and the crop is the frame's centre square (a real ``CropBox``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

from avatarify_app.config import EngineConfig, TrackingConfig
from avatarify_app.errors import CameraError, CheckpointError, NoFaceError
from avatarify_app.frames import resize, rgb_to_bgr
from avatarify_app.tracking import CropBox

CODED_SIZE = 32  # crops and engines of the coded runs
FACE_SIZE = 256  # ... and of the face runs (the window's)
AVATAR_CODE = 10  # the coded aligner's landmarks: a driving frame with this code matches exactly


# -- frames ------------------------------------------------------------------------------------
def coded_frame(i: int, size: tuple[int, int] = (64, 48)) -> np.ndarray:
    """A plain frame whose colour is its index: R = i % 256, G = i // 256, B = 200."""
    w, h = size
    frame = np.empty((h, w, 3), np.uint8)
    frame[:] = (i % 256, (i // 256) % 256, 200)
    return frame


def decode(frame: np.ndarray) -> int:
    """Index from the centre pixel of a coded frame (any size)."""
    r, g, _ = frame[frame.shape[0] // 2, frame.shape[1] // 2]
    return int(r) + 256 * int(g)


def black(size: tuple[int, int] = (64, 48)) -> np.ndarray:
    """A frame with no face in it (for every fake here)."""
    return np.zeros((size[1], size[0], 3), np.uint8)


def clip_frame(i: int, size: tuple[int, int] = (160, 120)) -> np.ndarray:
    """Frame ``i`` of ``write_clip``: the left half bright, the right half dark (so mirroring is
    visible), an orange disc swaying about the centre."""
    w, h = size
    frame = np.full((h, w, 3), 40, np.uint8)
    frame[:, : w // 2] = 200
    cv2.circle(frame, (w // 2 + int(10 * np.sin(i / 5)), h // 2), 25, (220, 160, 90), -1)
    return frame


def face_points(shift: float = 0.0, size: int = FACE_SIZE) -> np.ndarray:
    """468 points on an ellipse-shaped face in a ``size`` crop (deterministic), ``shift`` px
    (of a 256 crop) to the right."""
    rng = np.random.default_rng(7)
    angles = rng.uniform(0, 2 * np.pi, 468)
    radius = np.sqrt(rng.uniform(0, 1, 468))
    pts = np.stack([128 + 60 * radius * np.cos(angles) + shift, 130 + 80 * radius * np.sin(angles)], 1)
    if size != FACE_SIZE:
        pts = pts * (size / FACE_SIZE)
    return pts.astype(np.float32)


def _no_face(image: np.ndarray) -> bool:
    return int(image.max()) == 0


# -- test videos (MJPG .avi by OpenCV, no ffmpeg needed; H.264 .mp4 by the app) -------------------------------
def write_video(path: Path, frames: list[np.ndarray], fps: float = 30.0) -> Path:
    """An MJPG .avi of RGB ``frames`` (values change by a few levels in compression)."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened()
    for frame in frames:
        writer.write(rgb_to_bgr(frame))
    writer.release()
    return path


def write_mp4(path: Path, frames: list[np.ndarray], fps: float = 25.0) -> Path:
    """An H.264 .mp4 of RGB ``frames`` through the app's own ``VideoWriter`` (ffmpeg), what the
    offline commands read."""
    from avatarify_app.pipeline.video import VideoWriter

    with VideoWriter(path, fps, frames[0].shape[1::-1]) as w:
        for frame in frames:
            w.write(frame)
    return path


def write_coded_video(path: Path, n: int, size: tuple[int, int] = (64, 48), fps: float = 30.0) -> Path:
    """A video whose frame i is ``coded_frame(i)`` (values +-3 after compression)."""
    return write_video(path, [coded_frame(i, size) for i in range(n)], fps)


def write_clip(path: Path, frames: int = 60, size: tuple[int, int] = (160, 120), fps: float = 25.0) -> Path:
    """A small video of ``clip_frame``s: what the window tests drive the fake camera with."""
    return write_video(path, [clip_frame(i, size) for i in range(frames)], fps)


# -- waiting -------------------------------------------------------------------------------------
def wait_for(predicate, timeout: float = 10.0, step: float = 0.01) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` s passed; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


# -- a frame source ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ListSource:
    """Frames from a list (a frame may be None for "raise CameraError here, once")."""

    frames: list
    realtime: bool = False
    loop: bool = False
    name: str = "list"
    fps: float | None = None
    state: dict = field(default_factory=lambda: {"pos": 0, "opened": 0, "closed": 0})

    def open(self) -> None:
        self.state["opened"] += 1

    def read(self):
        pos = self.state["pos"]
        if pos >= len(self.frames):
            if not self.loop:
                return None
            pos = 0
        self.state["pos"] = pos + 1
        frame = self.frames[pos]
        if frame is None:
            self.frames[pos] = coded_frame(pos)  # fails once, then recovers
            raise CameraError("fake camera unplugged")
        return frame, time.perf_counter()

    def close(self) -> None:
        self.state["closed"] += 1


# -- a virtual camera -------------------------------------------------------------------------------
class RecordingBackend:
    """A pyvirtualcam backend (its ``Backend`` interface) that keeps what it is sent; register
    it with ``pyvirtualcam.register_backend`` (and reset ``instances`` and ``fail_with``).
    ``fail_with``: a message to fail opening with, as a missing camera driver does."""

    instances: list = []  # noqa: RUF012 (test bookkeeping, reset by the fixtures)
    fail_with: str | None = None

    def __init__(self, *, width, height, fps, fourcc, device, **kw) -> None:
        if RecordingBackend.fail_with:
            raise RuntimeError(RecordingBackend.fail_with)
        self.width, self.height, self.fps, self.fourcc = width, height, fps, fourcc
        self._device = device or "test-vcam"
        self.frames: list[np.ndarray] = []
        self.closed = False
        RecordingBackend.instances.append(self)

    def send(self, frame: np.ndarray) -> None:
        self.frames.append(frame.reshape(self.height, self.width, 3).copy())

    def close(self) -> None:
        self.closed = True

    def device(self) -> str:
        return self._device

    def native_fourcc(self):
        return None


# -- tracker, aligner, pose match ------------------------------------------------------------------
@dataclass(frozen=True)
class FakeTracker:
    """A face in every frame that is not all black: the crop is the frame's centre square at
    ``size``; the landmarks (crop px) the frame's code at every point (``coded``) or a face-like
    cloud that sways with the frame's brightness. Records reset/set_crop/close in ``calls``."""

    size: int = CODED_SIZE
    coded: bool = True
    calls: list = field(default_factory=list)

    def process(self, frame: np.ndarray, timestamp_s: float):
        if _no_face(frame):
            return None
        h, w = frame.shape[:2]
        box = CropBox(w / 2, h / 2, float(min(h, w)))
        crop = box.extract(frame, self.size)
        if self.coded:
            lms = np.full((468, 2), float(decode(frame)), np.float32)
        else:
            lms = face_points(shift=float(frame.mean()) / 50.0, size=self.size)
        face = SimpleNamespace(box=np.array([box.x0, box.y0, box.x0 + box.side, box.y0 + box.side], np.float32),
                               landmarks=box.to_image(lms, self.size), score=1.0)
        return SimpleNamespace(face=face, box=box, crop=crop, landmarks=lms)

    def reset(self) -> None:
        self.calls.append("reset")

    def set_crop(self, crop) -> None:
        self.calls.append(("set_crop", crop))

    def close(self) -> None:
        self.calls.append("close")


@dataclass(frozen=True)
class FakeAligner:
    """Frames a portrait by squeezing the whole picture to ``size``; its landmarks are
    ``AVATAR_CODE`` everywhere (``coded``) or ``face_points``. A black picture has no face."""

    size: int = CODED_SIZE
    coded: bool = True

    def __call__(self, image: np.ndarray, tracking: TrackingConfig | None = None):
        if _no_face(image):
            raise NoFaceError("fake aligner: no face in a black picture")
        if self.coded:
            lms = np.full((468, 2), float(AVATAR_CODE), np.float32)
        else:
            lms = face_points(size=self.size)
        half = self.size / 2
        return SimpleNamespace(image=resize(image, (self.size, self.size)), landmarks=lms,
                               box=CropBox(half, half, float(self.size)), full_shape=image.shape[:2])


def coded_pose_match(a: np.ndarray, b: np.ndarray) -> float:
    """1 / (1 + |difference of the first coordinate|): 1.0 where the codes are equal."""
    return 1.0 / (1.0 + abs(float(a[0, 0]) - float(b[0, 0])))


# -- engines ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FakeEngine:
    """An engine (the required part of the protocol) that records everything.

    predict returns the driving crop as is (so the output carries a coded frame's code) or,
    with ``tint``, the avatar tinted by the driving crop (3/4 avatar, 1/4 driving). It sleeps
    ``delay_s`` and burns ``work_s`` of numpy CPU time per frame (releasing the GIL, like a real
    engine). A black avatar has no face. debug_info is shaped like the FOMM engine's.

    Histories: ``sources``, ``references`` (None for a cleared one), ``options``. Current state in
    ``state``: "source", "reference", "predicted" (a count), "thread" (of the last predict),
    "built_on" (set by ``Fakes``), "closed".
    """

    name: str = "fake"
    device: str = "cpu (fake)"
    size: int = CODED_SIZE
    tint: bool = False
    delay_s: float = 0.0
    work_s: float = 0.0
    sources: list = field(default_factory=list)
    references: list = field(default_factory=list)
    options: list = field(default_factory=list)
    state: dict = field(default_factory=dict)

    def set_source(self, image, landmarks=None) -> None:
        if _no_face(image):
            raise NoFaceError("fake engine: black avatar")
        source = np.ascontiguousarray(image)
        self.state["source"] = source
        self.sources.append(source)

    def set_reference(self, image, landmarks=None) -> None:
        reference = None if image is None else np.array(image, copy=True)
        self.state["reference"] = reference
        self.references.append(reference)

    def has_reference(self) -> bool:
        return self.state.get("reference") is not None

    def set_options(self, options) -> None:
        self.options.append(options)

    def predict(self, image, landmarks=None) -> np.ndarray:
        if self.delay_s:
            time.sleep(self.delay_s)
        end = time.perf_counter() + self.work_s
        acc = np.zeros((64, 64), np.float32)
        while time.perf_counter() < end:
            acc += np.sin(acc + 1.0)
        if self.state.get("reference") is None:
            self.state["reference"] = np.array(image, copy=True)
        self.state["predicted"] = self.state.get("predicted", 0) + 1
        self.state["thread"] = threading.current_thread().name
        if not self.tint:
            return np.ascontiguousarray(image)
        source = self.state.get("source")
        source = image if source is None else source
        return np.ascontiguousarray((image.astype(np.uint16) // 4 + source.astype(np.uint16) * 3 // 4).astype(np.uint8))

    def debug_info(self) -> dict[str, np.ndarray]:
        kp = face_points()[:10]
        yy, xx = np.mgrid[0:64, 0:64].astype(np.float32)
        return {"kp_source": kp, "kp_driving": kp + 3.0, "occlusion": (xx / 63.0),
                "flow": np.stack([np.sin(yy / 10) * 3, np.cos(xx / 10) * 3], axis=2)}

    def close(self) -> None:
        self.state["closed"] = True


@dataclass(frozen=True)
class ControlledEngine(FakeEngine):
    """A FakeEngine with the protocol's two optional parts: ``set_controls`` (live options;
    recorded in ``controls``, the thread each came on in ``control_threads``) and ``timings()``
    (reports ``stage_ms``)."""

    stage_ms: dict = field(default_factory=dict)
    controls: list = field(default_factory=list)
    control_threads: list = field(default_factory=list)

    def set_controls(self, controls: dict) -> None:
        self.control_threads.append(threading.current_thread().name)
        self.controls.append(dict(controls))

    def timings(self) -> dict[str, float]:
        return dict(self.stage_ms)


# -- the wiring -------------------------------------------------------------------------------------
@dataclass
class Fakes:
    """The fakes wired into a Session, and what was built (for the tests to look at).

    ``coded``: the coded-frame run or the face run (see the module's note). ``engine_kw`` go to
    every engine built (e.g. ``delay_s``, ``work_s``, ``device``, ``stage_ms``).
    """

    coded: bool = False
    engine_kw: dict = field(default_factory=dict)
    real_aligner: bool = False  # frame portraits with the real tracker (mediapipe) instead
    registry: bool = False  # build engines through the engine registry (real engines, registered specs)
    pose_match: float | None = None  # every frame's pose match (None: the run's own measure)
    pose_hint: str | None = None  # ... and the hint that goes with a low one
    engines: list = field(default_factory=list)
    trackers: list = field(default_factory=list)
    sessions: list = field(default_factory=list)

    @property
    def engine(self) -> FakeEngine:
        return self.engines[-1]

    @property
    def size(self) -> int:
        return CODED_SIZE if self.coded else FACE_SIZE

    def engine_factory(self, config: EngineConfig, motion) -> FakeEngine:
        """A fake engine; "fomm" goes through the real checkpoint loader (and fails without a
        checkpoint), as in the real FOMM engine."""
        if config.name == "auto" and not self.coded:  # what the registry would choose here
            from avatarify_app.engines.registry import REGISTRY

            config = config.replace(name=REGISTRY.choose(config).name)
        elif config.name == "fomm":
            from avatarify_app.models import load_fomm

            if not config.checkpoint:
                raise CheckpointError("The FOMM engine needs a checkpoint.", "Load one.")
            load_fomm(config.checkpoint)
        if self.coded:
            engine = FakeEngine(**{"size": self.size, **self.engine_kw})
        else:
            engine = ControlledEngine(**{"name": config.name, "size": self.size, "tint": True, **self.engine_kw})
        engine.state["built_on"] = threading.current_thread().name
        self.engines.append(engine)
        return engine

    def tracker_factory(self, tracking: TrackingConfig) -> FakeTracker:
        tracker = FakeTracker(size=self.size, coded=self.coded)
        self.trackers.append(tracker)
        return tracker

    @property
    def aligner(self) -> FakeAligner:
        return FakeAligner(size=self.size, coded=self.coded)

    def wiring(self) -> dict:
        """Session keyword arguments for these fakes (a test may swap or drop one)."""
        kw = {"engine_factory": None if self.registry else self.engine_factory,
              "tracker_factory": self.tracker_factory,
              "aligner": None if self.real_aligner else self.aligner}
        if self.pose_match is not None:
            kw["pose_matcher"] = lambda a, b: self.pose_match
            kw["pose_hinter"] = lambda a, b: self.pose_hint
        elif self.coded:
            kw["pose_matcher"] = coded_pose_match
        return kw

    def session_factory(self, source, **kwargs):
        """What the window calls to build its session."""
        from avatarify_app.pipeline import Session

        session = Session(source, stats_interval=0.2, **self.wiring(), **kwargs)
        self.sessions.append(session)
        return session
