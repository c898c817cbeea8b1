"""Per-frame CPU time of the plain eager FOMM forward vs our engine, on the same random vox-256 weights.

Baseline ("eager"): what the authors' demo does per frame, uncached and unfused: keypoints of
the driving frame, relative keypoints, and the full generator forward from the source image.
Engine: FommEngine.predict on the same weights, for each backend asked for. Runs are
interleaved round by round so that load from other processes hits every variant alike;
the median and the minimum per variant are printed, then the speed-ups of the medians.

    .venv/bin/python scripts/bench_fomm_baseline.py --frames 10 [--variants eager,torch,onnx]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
from avatarify_app.commands.bench_fomm import synthetic_frames

from avatarify_app.config import MotionOptions
from avatarify_app.engines.fomm.engine import FommEngine
from avatarify_app.models import build_models, load_model_params
from avatarify_app.motion import relative_keypoints

FLOOR_GFLOP = 89.4  # per frame with source caching, vox-256 at 256 px (issue 2)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--variants", default="eager,torch,onnx",
                   help="comma list of eager, torch, onnx; a suffix -winograd / -nowinograd forces "
                        "the Winograd bottleneck on or off (default: the engine's choice)")
    p.add_argument("--floor-ms", type=float, default=560.0, help="the issue's compute floor at 256 px")
    args = p.parse_args()

    torch.manual_seed(0)
    kp_detector, generator = build_models(load_model_params())
    kp_detector.eval()
    generator.eval()
    frames = synthetic_frames(args.frames + args.warmup + 2)
    source, reference = frames[0], frames[1]

    def to_t(frame: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255.0

    with torch.inference_mode():
        kp_source = kp_detector(to_t(source))
        kp_reference = kp_detector(to_t(reference))

    def eager(frame: np.ndarray) -> None:
        with torch.inference_mode():
            kp_driving = kp_detector(to_t(frame))
            kp_norm = relative_keypoints(kp_source, kp_driving, kp_reference, adapt_movement_scale=True)
            out = generator(to_t(source), kp_source=kp_source, kp_driving=kp_norm)
            (out["prediction"][0].permute(1, 2, 0) * 255).round().byte().numpy()

    runners = {}
    for name in args.variants.split(","):
        if name == "eager":
            runners[name] = eager
            continue
        backend, _, flag = name.partition("-")
        t0 = time.perf_counter()
        engine = FommEngine(kp_detector, generator, device="cpu", backend=backend,
                            winograd={"winograd": True, "nowinograd": False}.get(flag),
                            options=MotionOptions(True, True))
        engine.set_source(source)
        engine.set_reference(reference)
        print(f"{name}: engine ready in {time.perf_counter() - t0:.1f} s ({engine.device})", flush=True)
        runners[name] = engine.predict

    times: dict[str, list[float]] = {k: [] for k in runners}
    for i in range(args.warmup + args.frames):
        frame = frames[2 + i % (len(frames) - 2)]
        for name, run in runners.items():
            t = time.perf_counter()
            run(frame)
            if i >= args.warmup:
                times[name].append((time.perf_counter() - t) * 1e3)

    result = {"threads": torch.get_num_threads(), "frames": args.frames}
    for name, ts in times.items():
        med = statistics.median(ts)
        result[name] = {"median_ms": round(med, 1), "min_ms": round(min(ts), 1)}
        print(f"{name:<18s} median {med:8.1f} ms   min {min(ts):8.1f} ms", flush=True)
    if "eager" in times:
        base = statistics.median(times["eager"])
        for name in times:
            if name != "eager":
                med = statistics.median(times[name])
                base_min, best = min(times["eager"]), min(times[name])
                result[name]["speedup"] = round(base / med, 2)
                result[name]["speedup_of_minimums"] = round(base_min / best, 2)
                result[name]["vs_floor"] = round(med / args.floor_ms, 2)
                print(f"speed-up {name}: {base / med:.2f}x of medians, {base_min / best:.2f}x of minimums "
                      f"(the minimums are what an idle machine gives); median {med / args.floor_ms:.2f}x, "
                      f"minimum {best / args.floor_ms:.2f}x the {args.floor_ms:.0f} ms floor of {FLOOR_GFLOP} GFLOP")
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
