"""Per-frame speed of any registered engine on the live path: tracking, then the engine.

The engine is built by its spec's ``bench_factory`` (full size with random weights when no
weights are configured, for engines that have one; the speed does not depend on the values),
else by its factory. The source is the shipped astronaut portrait (aligned); the driving
frames come from ``video`` (default: the demo clip the app plays without a camera, else a
generated clip of the portrait moving) and are decoded before timing.

Per frame: ``tracking`` (face mesh, smoothed crop box, crop) and ``engine`` (one
``predict``), plus the engine's own stages when it reports them (``Engine.timings()``).
``ms_per_frame`` is the engine's time for one driving frame (the source prepared once);
``live_ms_per_frame`` adds tracking: what the live pipeline spends per frame. On CUDA,
``vram_peak_mb`` is the most GPU memory torch allocated (``torch.cuda.max_memory_allocated``).
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from avatarify_app.config import EngineConfig, MotionOptions
from avatarify_app.paths import ASSETS_DIR, AVATARS_DIR

log = logging.getLogger(__name__)

DEMO_CLIP = ASSETS_DIR / "demo" / "driving.mp4"


@dataclass
class BenchResult:
    """Per-frame timings in milliseconds, one list per stage, plus a description."""

    stages: dict[str, list[float]]
    total: list[float]
    meta: dict[str, object] = field(default_factory=dict)
    live: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        ms = statistics.median(self.total)
        out: dict[str, object] = dict(self.meta)
        out["frames"] = len(self.total)
        out["stages_ms"] = {k: round(statistics.median(v), 3) for k, v in self.stages.items() if v}
        out["ms_per_frame"] = round(ms, 3)
        out["ms_per_frame_mean"] = round(statistics.fmean(self.total), 3)
        # Interpolated as the live stats' percentiles are (a rank rounded down put the p95 of two
        # frames on the faster one, below the median).
        out["ms_per_frame_p95"] = round(float(np.percentile(self.total, 95)), 3)
        out["fps"] = round(1000.0 / ms, 2) if ms > 0 else float("inf")
        if self.live:
            live = statistics.median(self.live)
            out["live_ms_per_frame"] = round(live, 3)
            out["live_fps"] = round(1000.0 / live, 2) if live > 0 else float("inf")
        return out


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


def driving_frames(video: str | Path | None, portrait: np.ndarray, n: int) -> tuple[list[np.ndarray], str]:
    """``n`` driving frames (a short video loops) and where they came from."""
    from avatarify_app.pipeline.video import iter_video

    path = Path(video) if video else (DEMO_CLIP if DEMO_CLIP.is_file() else None)
    if path is None:
        return synthetic_clip(portrait, n), "generated clip 640x480"
    out = list(iter_video(path, max_frames=n))
    while out and len(out) < n:
        out.extend(out[: n - len(out)])
    return out, path.name


def peak_cuda_memory_mb() -> float | None:
    """The most GPU memory torch allocated in this process so far (MiB), or None when it has not
    used CUDA (torch is not imported here for that)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


def build_engine(config: EngineConfig, motion: MotionOptions):
    """The engine the bench measures (see the module docstring)."""
    from avatarify_app.engines import REGISTRY

    choice = REGISTRY.choose(config)
    checked = REGISTRY.checked(choice.config)
    factory = choice.spec.bench_factory or choice.spec.factory
    return factory(checked, motion)


def measure(config: EngineConfig, *, frames: int = 20, warmup: int = 3, video: str | Path | None = None,
            engine=None) -> BenchResult:
    """Time ``warmup + frames`` driving frames through tracking and the engine."""
    from avatarify_app.tracking import StreamTracker, align_portrait
    from avatarify_app.tracking.crop import to_size

    warmup = max(int(warmup), 1)
    n = max(int(frames), 1)
    motion = MotionOptions(relative=True, adapt_scale=True)
    t0 = time.perf_counter()
    engine = engine or build_engine(config, motion)
    setup_s = time.perf_counter() - t0
    portrait = source_portrait()
    aligned = align_portrait(portrait)
    clip, name = driving_frames(video, portrait, warmup + n)
    tracker = StreamTracker()
    stages: dict[str, list[float]] = {"tracking": [], "engine": []}
    total: list[float] = []
    live: list[float] = []
    faces = 0
    timings = getattr(engine, "timings", None)
    try:
        engine.set_source(*to_size(aligned.image, aligned.landmarks, engine.size))
        for i, frame in enumerate(clip):
            t1 = time.perf_counter()
            r = tracker.process(frame, i / 25.0)
            t2 = time.perf_counter()
            if r is None:
                continue
            engine.predict(*to_size(r.crop, r.landmarks, engine.size))
            t3 = time.perf_counter()
            if i < warmup:
                continue
            faces += 1
            stages["tracking"].append((t2 - t1) * 1e3)
            stages["engine"].append((t3 - t2) * 1e3)
            for stage, ms in (timings() if timings else {}).items():
                stages.setdefault(stage, []).append(ms)
            total.append((t3 - t2) * 1e3)
            live.append((t3 - t1) * 1e3)
    finally:
        tracker.close()
        engine.close()
    if not total:
        from avatarify_app.errors import NoFaceError

        raise NoFaceError(f"No face was found in the driving frames ({name}).", "Use a video with a visible face.")
    meta = {"engine": engine.name, "device": engine.device, "video": name, "setup_s": round(setup_s, 2),
            "frame_size": f"{clip[0].shape[1]}x{clip[0].shape[0]}", "faces": faces,
            "weights": "given" if config.checkpoint else "as the engine's bench factory chose (random when none given)"}
    for key in ("backend", "half"):
        if hasattr(engine, key):
            meta[key] = getattr(engine, key)
    vram = peak_cuda_memory_mb()
    if vram is not None:
        meta["vram_peak_mb"] = vram
    return BenchResult(stages=stages, total=total, meta=meta, live=live)

