"""Plain fakes for the pipeline tests (frozen dataclasses with their state in one dict).

Frames carry their index in their colour: R = i % 256, G = i // 256, B = 200 (a black
frame means "no face" to the fake tracker), so order survives any resize.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import cv2
import numpy as np

from avatarify_app.errors import CameraError, NoFaceError
from avatarify_app.frames import resize

SIZE = 32


def coded_frame(i: int, size: tuple[int, int] = (64, 48)) -> np.ndarray:
    w, h = size
    frame = np.empty((h, w, 3), np.uint8)
    frame[:] = (i % 256, (i // 256) % 256, 200)
    return frame


def decode(frame: np.ndarray) -> int:
    """Index from the centre pixel of a coded frame (any size)."""
    r, g, _ = frame[frame.shape[0] // 2, frame.shape[1] // 2]
    return int(r) + 256 * int(g)


def black(size: tuple[int, int] = (64, 48)) -> np.ndarray:
    return np.zeros((size[1], size[0], 3), np.uint8)


def write_video(path, n: int, size: tuple[int, int] = (64, 48), fps: float = 30.0) -> None:
    """An MJPG .avi whose frame i is coded_frame(i) (values +-3 after compression)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened()
    for i in range(n):
        writer.write(np.ascontiguousarray(coded_frame(i, size)[:, :, ::-1]))
    writer.release()


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


@dataclass(frozen=True)
class FakeBox:
    """The fake tracker's crop box: the whole frame, squeezed to a square (as its crops are)."""

    code: int

    def extract(self, frame, size: int = 256):
        return resize(frame, (size, size))


@dataclass(frozen=True)
class FakeTracker:
    """Crop = the frame scaled to SIZE; landmarks = the frame's code everywhere; black = no face."""

    size: int = SIZE
    calls: list = field(default_factory=list)

    def process(self, frame, timestamp_s):
        if int(frame[frame.shape[0] // 2, frame.shape[1] // 2].max()) == 0:
            return None
        code = decode(frame)
        lms = np.full((468, 2), float(code), np.float32)
        face = SimpleNamespace(box=np.zeros(4, np.float32), landmarks=lms, score=1.0)
        return SimpleNamespace(face=face, box=FakeBox(code), crop=resize(frame, (self.size, self.size)),
                               landmarks=lms)

    def reset(self) -> None:
        self.calls.append("reset")

    def set_crop(self, crop) -> None:
        self.calls.append(("set_crop", crop))

    def close(self) -> None:
        self.calls.append("close")


@dataclass(frozen=True)
class FakeEngine:
    """Returns the driving crop (so the output carries the frame's code); records everything."""

    name: str = "fake"
    device: str = "cpu"
    size: int = SIZE
    delay_s: float = 0.0
    state: dict = field(default_factory=dict)

    def set_source(self, image, landmarks=None) -> None:
        if int(image.max()) == 0:
            raise NoFaceError("fake engine: black avatar")
        self.state["source"] = image

    def set_reference(self, image, landmarks=None) -> None:
        self.state["reference"] = image

    def has_reference(self) -> bool:
        return self.state.get("reference") is not None

    def set_options(self, options) -> None:
        self.state["options"] = options

    def predict(self, image, landmarks=None):
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.state.get("reference") is None:
            self.state["reference"] = image
        self.state["predicted"] = self.state.get("predicted", 0) + 1
        self.state["thread"] = threading.current_thread().name
        return np.ascontiguousarray(image)

    def debug_info(self):
        return {"kp": np.zeros((10, 2), np.float32)}

    def close(self) -> None:
        self.state["closed"] = True


def fake_aligner(image, tracking=None):
    if int(image.max()) == 0:
        raise NoFaceError("fake aligner: no face in a black picture")
    return SimpleNamespace(image=resize(image, (SIZE, SIZE)), landmarks=np.full((468, 2), 10.0, np.float32))


def fake_pose_match(a, b) -> float:
    return 1.0 / (1.0 + abs(float(a[0, 0]) - float(b[0, 0])))


def fakes(**engine_kw):
    """Session keyword arguments wiring the fakes; returns (kwargs, engines built, trackers built)."""
    engines: list[FakeEngine] = []
    trackers: list[FakeTracker] = []

    def engine_factory(config, motion):
        if config.name == "fomm":
            raise RuntimeError("fake: no fomm here")
        engine = FakeEngine(**engine_kw)
        engine.state["built_on"] = threading.current_thread().name
        engines.append(engine)
        return engine

    def tracker_factory(tracking):
        tracker = FakeTracker()
        trackers.append(tracker)
        return tracker

    kw = dict(engine_factory=engine_factory, tracker_factory=tracker_factory, aligner=fake_aligner,
              pose_matcher=fake_pose_match)
    return kw, engines, trackers


def wait_for(predicate, timeout: float = 10.0, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
