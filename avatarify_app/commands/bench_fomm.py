"""`bench --engine fomm`: per-frame time of the FOMM engine, per stage.

Without --checkpoint the models get random weights of the vox-256 shape (the speed does not
depend on the values). Source and driving crops are synthetic, so nothing is read from disk.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from avatarify_app.commands.bench import BenchResult
from avatarify_app.config import MotionOptions


def synthetic_frames(n: int, size: int = 256, seed: int = 0) -> list[np.ndarray]:
    """Smooth moving colour blobs (deterministic), as uint8 RGB frames."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size
    centres = rng.uniform(0.2, 0.8, (4, 2))
    colours = rng.uniform(0, 255, (4, 3))
    frames = []
    for i in range(n):
        img = np.full((size, size, 3), 40.0, np.float32)
        for k in range(4):
            cx, cy = centres[k] + 0.05 * np.sin(0.3 * i + k)
            img += colours[k] * np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / 0.02)[..., None]
        frames.append(np.ascontiguousarray(np.clip(img, 0, 255).astype(np.uint8)))
    return frames


def build_engine(args: argparse.Namespace):
    """The engine the bench measures (random vox-256 weights when no checkpoint is given)."""
    from avatarify_app.engines.fomm import FommEngine
    from avatarify_app.models import build_models, load_fomm, load_model_params

    if getattr(args, "checkpoint", None):
        kp_detector, generator = load_fomm(args.checkpoint)
    else:
        kp_detector, generator = build_models(load_model_params())
    half = True if getattr(args, "half", False) else None
    return FommEngine(kp_detector.eval(), generator.eval(), device=getattr(args, "device", "auto"), half=half,
                      backend=getattr(args, "backend", "auto"), options=MotionOptions(relative=True, adapt_scale=True))


def measure(args: argparse.Namespace) -> BenchResult:
    t0 = time.perf_counter()
    engine = build_engine(args)
    setup_s = time.perf_counter() - t0
    frames = synthetic_frames(max(2, args.frames + args.warmup + 1))
    try:
        engine.set_source(frames[0])
        engine.set_reference(frames[1])
        stages: dict[str, list[float]] = {"keypoints": [], "dense_motion": [], "generator": []}
        total: list[float] = []
        for i in range(args.warmup + args.frames):
            start = time.perf_counter()
            _, ms = engine.predict_timed(frames[1 + i % (len(frames) - 1)])
            elapsed = (time.perf_counter() - start) * 1e3
            if i >= args.warmup:
                for k in stages:
                    stages[k].append(ms[k])
                total.append(elapsed)
    finally:
        engine.close()
    meta = {"engine": "fomm", "device": engine.device, "backend": engine.backend, "half": engine.half,
            "checkpoint": getattr(args, "checkpoint", None) or "random vox-256 weights",
            "setup_s": round(setup_s, 2)}
    return BenchResult(stages=stages, total=total, meta=meta)
