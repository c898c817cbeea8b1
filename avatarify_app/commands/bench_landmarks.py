"""Speed of the live per-frame path with the landmark engine: StreamTracker + LandmarkEngine.

Driving video: ``args.video``, else ../shared/media/Megamind.avi when this checkout sits
beside it, else a clip generated in a temporary folder (a portrait moved by smooth head
motion inside a 640x480 frame). The source is the shipped astronaut avatar, else
scikit-image's astronaut, aligned with ``tracking.align_portrait``. Frames are decoded
before timing; stages: ``tracking`` (mesh + smoothed crop box + crop) and ``engine``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from avatarify_app.commands.bench import BenchResult
from avatarify_app.paths import AVATARS_DIR, PROJECT_ROOT

SHARED_VIDEO = PROJECT_ROOT.parent / "shared" / "media" / "Megamind.avi"


def source_portrait() -> np.ndarray:
    """The shipped astronaut avatar, else scikit-image's astronaut photo."""
    from avatarify_app.frames import load_image

    shipped = sorted(AVATARS_DIR.glob("*astronaut*.[jp][pn]g")) if AVATARS_DIR.is_dir() else []
    if shipped:
        return load_image(shipped[0])
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def synthetic_clip(portrait: np.ndarray, n: int, size: tuple[int, int] = (640, 480)) -> list[np.ndarray]:
    """A portrait pasted in a frame and moved by a smooth rotation/scale/shift (no file)."""
    w, h = size
    side = min(w, h)
    face = cv2.resize(portrait, (side, side), interpolation=cv2.INTER_AREA)
    base = np.full((h, w, 3), 90, np.uint8)
    x0 = (w - side) // 2
    base[:, x0 : x0 + side] = face[:h]
    frames = []
    for i in range(n):
        t = i / 30.0
        m = cv2.getRotationMatrix2D((w / 2, h / 2), 8 * np.sin(1.3 * t), 1 + 0.05 * np.sin(0.7 * t))
        m[:, 2] += (20 * np.sin(0.9 * t), 10 * np.sin(1.1 * t))
        frames.append(cv2.warpAffine(base, m, (w, h), borderMode=cv2.BORDER_REPLICATE))
    return frames


def _driving_frames(args: argparse.Namespace, portrait: np.ndarray, n: int) -> tuple[list[np.ndarray], str]:
    video = getattr(args, "video", None)
    path = Path(video) if video else (SHARED_VIDEO if SHARED_VIDEO.is_file() else None)
    if path is None:
        return synthetic_clip(portrait, n), "generated clip 640x480"
    from avatarify_app.commands.animate import read_video

    frames, _meta = read_video(path)
    out = []
    for f in frames:
        out.append(f)
        if len(out) >= n:
            break
    while len(out) < n:  # loop short videos
        out.extend(out[: n - len(out)])
    return out, path.name


def measure(args: argparse.Namespace) -> BenchResult:
    from avatarify_app.engines.landmarks import LandmarkEngine
    from avatarify_app.tracking import StreamTracker, align_portrait

    warmup = max(int(getattr(args, "warmup", 3)), 1)
    n = max(int(getattr(args, "frames", 20)), 1)
    portrait = source_portrait()
    aligned = align_portrait(portrait)
    frames, name = _driving_frames(args, portrait, warmup + n)
    engine = LandmarkEngine()
    tracker = StreamTracker()
    stages: dict[str, list[float]] = {"tracking": [], "engine": []}
    total: list[float] = []
    faces = 0
    try:
        engine.set_source(aligned.image, aligned.landmarks)
        for i, frame in enumerate(frames):
            t0 = time.perf_counter()
            r = tracker.process(frame, i / 30.0)
            t1 = time.perf_counter()
            if r is not None:
                engine.predict(r.crop, r.landmarks)
            t2 = time.perf_counter()
            if i < warmup:
                continue
            faces += r is not None
            stages["tracking"].append((t1 - t0) * 1000)
            stages["engine"].append((t2 - t1) * 1000)
            total.append((t2 - t0) * 1000)
    finally:
        tracker.close()
        engine.close()
    meta = {"engine": "landmarks", "device": engine.device, "video": name,
            "frame_size": f"{frames[0].shape[1]}x{frames[0].shape[0]}", "faces": faces}
    return BenchResult(stages=stages, total=total, meta=meta)
