"""Plain fakes for the GUI tests: a tracker and an engine behind the real Session.

The tracker "finds" a face in every frame that is not black: the crop is the frame's
centre square, the landmarks a fixed face-like point cloud that sways with the frame's
brightness. The engine returns the avatar tinted by the driving crop, records every call
and reports debug arrays shaped like the FOMM engine's (keypoints, occlusion, flow).
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
from avatarify_app.errors import CheckpointError
from avatarify_app.frames import resize
from avatarify_app.tracking import CropBox

SIZE = 256


def face_points(shift: float = 0.0) -> np.ndarray:
    """468 points on an ellipse-shaped face in a 256 crop (deterministic)."""
    rng = np.random.default_rng(7)
    angles = rng.uniform(0, 2 * np.pi, 468)
    radius = np.sqrt(rng.uniform(0, 1, 468))
    pts = np.stack([128 + 60 * radius * np.cos(angles) + shift, 130 + 80 * radius * np.sin(angles)], 1)
    return pts.astype(np.float32)


def write_clip(path: Path, frames: int = 60, size: tuple[int, int] = (160, 120), fps: float = 25.0) -> Path:
    """A small video whose left half is bright and right half dark (so mirroring is visible)."""
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened()
    for i in range(frames):
        frame = np.full((h, w, 3), 40, np.uint8)
        frame[:, : w // 2] = 200
        cv2.circle(frame, (w // 2 + int(10 * np.sin(i / 5)), h // 2), 25, (90, 160, 220), -1)
        writer.write(frame)
    writer.release()
    return path


@dataclass
class FakeTracker:
    calls: list = field(default_factory=list)

    def process(self, frame: np.ndarray, timestamp_s: float):
        h, w = frame.shape[:2]
        if int(frame.max()) == 0:
            return None
        box = CropBox(w / 2, h / 2, float(min(h, w)))
        crop = box.extract(frame, SIZE)
        lms = face_points(shift=float(frame.mean()) / 50.0)
        face = SimpleNamespace(box=np.array([box.x0, box.y0, box.x0 + box.side, box.y0 + box.side], np.float32),
                               landmarks=box.to_image(lms, SIZE), score=1.0)
        return SimpleNamespace(face=face, box=box, crop=crop, landmarks=lms)

    def reset(self) -> None:
        self.calls.append("reset")

    def set_crop(self, crop) -> None:
        self.calls.append(("set_crop", crop))

    def close(self) -> None:
        self.calls.append("close")


@dataclass
class FakeEngine:
    name: str = "landmarks"
    device: str = "cpu (fake)"
    size: int = SIZE
    work_s: float = 0.0  # CPU-bound numpy work per frame, to load the machine like an engine
    sources: list = field(default_factory=list)
    references: list = field(default_factory=list)
    options: list = field(default_factory=list)
    predicted: int = 0
    closed: bool = False
    controls: list = field(default_factory=list)  # what set_controls got (live options)
    stage_ms: dict = field(default_factory=dict)  # what timings() reports
    _source: np.ndarray | None = None
    _reference: np.ndarray | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def set_source(self, image, landmarks=None) -> None:
        self._source = np.ascontiguousarray(image)
        self.sources.append(self._source)

    def set_reference(self, image, landmarks=None) -> None:
        self._reference = None if image is None else np.array(image, copy=True)
        self.references.append(self._reference)

    def has_reference(self) -> bool:
        return self._reference is not None

    def set_options(self, options) -> None:
        self.options.append(options)

    def predict(self, image, landmarks=None) -> np.ndarray:
        end = time.perf_counter() + self.work_s
        acc = np.zeros((64, 64), np.float32)
        while time.perf_counter() < end:
            acc += np.sin(acc + 1.0)  # releases the GIL in numpy, like a real engine
        if self._reference is None:
            self._reference = np.array(image, copy=True)
        self.predicted += 1
        src = self._source if self._source is not None else image
        tint = (image.astype(np.uint16) // 4 + src.astype(np.uint16) * 3 // 4).astype(np.uint8)
        return np.ascontiguousarray(tint)

    def debug_info(self) -> dict[str, np.ndarray]:
        kp = face_points()[:10]
        yy, xx = np.mgrid[0:64, 0:64].astype(np.float32)
        return {"kp_source": kp, "kp_driving": kp + 3.0, "occlusion": (xx / 63.0),
                "flow": np.stack([np.sin(yy / 10) * 3, np.cos(xx / 10) * 3], axis=2)}

    def set_controls(self, controls: dict) -> None:
        self.controls.append(dict(controls))

    def timings(self) -> dict[str, float]:
        return dict(self.stage_ms)

    def close(self) -> None:
        self.closed = True


@dataclass
class Fakes:
    """What the session factory built, for the tests to look at."""

    engines: list = field(default_factory=list)
    trackers: list = field(default_factory=list)
    sessions: list = field(default_factory=list)
    engine_work_s: float = 0.0
    engine_device: str = "cpu (fake)"
    real_aligner: bool = False  # frame portraits with the real tracker (mediapipe) instead of resizing
    registry: bool = False  # build engines through the engine registry (real engines, registered specs)
    engine_stage_ms: dict = field(default_factory=dict)  # what the fake engines' timings() report
    pose_match: float | None = None  # every frame's pose match (None: the real measure)
    pose_hint: str | None = None  # ... and the hint that goes with a low one

    @property
    def engine(self) -> FakeEngine:
        return self.engines[-1]

    def engine_factory(self, config: EngineConfig, motion) -> FakeEngine:
        if config.name == "auto":  # what the registry would choose here, as a fake
            from avatarify_app.engines.registry import REGISTRY

            config = config.replace(name=REGISTRY.choose(config).name)
        elif config.name == "fomm":
            # The real checkpoint loader decides, as it would in the real FOMM engine.
            from avatarify_app.models import load_fomm

            if not config.checkpoint:
                raise CheckpointError("The FOMM engine needs a checkpoint.", "Load one.")
            load_fomm(config.checkpoint)
        engine = FakeEngine(name=config.name, work_s=self.engine_work_s, device=self.engine_device,
                            stage_ms=dict(self.engine_stage_ms))
        self.engines.append(engine)
        return engine

    def tracker_factory(self, tracking: TrackingConfig) -> FakeTracker:
        tracker = FakeTracker()
        self.trackers.append(tracker)
        return tracker

    @staticmethod
    def aligner(image: np.ndarray, tracking: TrackingConfig):
        face = resize(image, (SIZE, SIZE))
        return SimpleNamespace(image=face, landmarks=face_points(), box=CropBox(128, 128, 256),
                               full_shape=image.shape[:2])

    def _pose_parts(self) -> dict:
        if self.pose_match is None:
            return {}
        return {"pose_matcher": lambda a, b: self.pose_match, "pose_hinter": lambda a, b: self.pose_hint}

    def session_factory(self, source, **kwargs):
        from avatarify_app.pipeline import Session

        session = Session(source, engine_factory=None if self.registry else self.engine_factory, tracker_factory=self.tracker_factory,
                          aligner=None if self.real_aligner else self.aligner, stats_interval=0.2,
                          **self._pose_parts(), **kwargs)
        self.sessions.append(session)
        return session
