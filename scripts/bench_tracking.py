"""Time the tracker on this machine.

    .venv/bin/python scripts/bench_tracking.py [VIDEO]

VIDEO defaults to ../shared/media/Megamind.avi; without it, the shipped astronaut portrait
is moved around a canvas to make a synthetic stream. Prints StreamTracker ms/frame at
640x480 and 1280x720 (median and p95) and align_portrait ms.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from avatarify_app.config import TrackingConfig  # noqa: E402
from avatarify_app.frames import bgr_to_rgb, load_image, resize  # noqa: E402
from avatarify_app.paths import AVATARS_DIR  # noqa: E402
from avatarify_app.tracking import PortraitAligner, StreamTracker, align_portrait  # noqa: E402

DEFAULT_VIDEO = ROOT.parent / "shared" / "media" / "Megamind.avi"


def read_frames(path: Path, limit: int = 240) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < limit:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(bgr_to_rgb(bgr))
    cap.release()
    return frames


def synthetic_frames(n: int = 240) -> list[np.ndarray]:
    face = load_image(AVATARS_DIR / "astronaut.png")
    frames = []
    for i in range(n):
        canvas = np.full((480, 640, 3), 90, np.uint8)
        x = 180 + int(60 * np.sin(i / 15))
        canvas[100:356, x : x + 256] = face
        frames.append(canvas)
    return frames


def bench_stream(frames: list[np.ndarray], size: tuple[int, int]) -> tuple[float, float, int]:
    scaled = [resize(f, size) for f in frames]
    with StreamTracker(TrackingConfig()) as tracker:
        for i, f in enumerate(scaled[:10]):  # warm up
            tracker.process(f, i / 30)
        tracker.reset()
        times, found = [], 0
        for i, f in enumerate(scaled):
            t0 = time.perf_counter()
            result = tracker.process(f, i / 30)
            times.append(time.perf_counter() - t0)
            found += result is not None
    ms = np.array(times) * 1000
    return float(np.median(ms)), float(np.percentile(ms, 95)), found


def main() -> int:
    video = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_VIDEO
    frames = read_frames(video) if video.is_file() else synthetic_frames()
    print(f"source: {video if video.is_file() else 'synthetic (astronaut on a canvas)'}, {len(frames)} frames")
    print(f"cv2 threads: {cv2.getNumThreads()}")
    for size in ((640, 480), (1280, 720)):
        med, p95, found = bench_stream(frames, size)
        print(f"StreamTracker.process {size[0]}x{size[1]}: median {med:.2f} ms, p95 {p95:.2f} ms, "
              f"face in {found}/{len(frames)} frames")
    portrait = load_image(AVATARS_DIR / "astronaut.png")
    big = np.ascontiguousarray(cv2.resize(frames[len(frames) // 4], (1920, 1440)))
    with PortraitAligner() as aligner:
        aligner.align(portrait)
        for name, image in (("astronaut 256", portrait), ("video frame 1920x1440", big)):
            t0 = time.perf_counter()
            for _ in range(5):
                aligner.align(image)
            print(f"PortraitAligner.align {name}: {(time.perf_counter() - t0) / 5 * 1000:.1f} ms")
    t0 = time.perf_counter()
    align_portrait(portrait)
    print(f"align_portrait (builds its graphs each call): {(time.perf_counter() - t0) * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
