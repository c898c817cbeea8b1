"""Seconds per forward pass and FLOPs of each full-size LivePortrait network, random weights.

The released sizes (the shipped config): 256x256 crops, a 32x16x64x64 feature volume, 21
keypoints, a 512x512 output. Per network: one untimed warm-up, then ``--repeats`` timed
passes under ``torch.inference_mode()`` (median and minimum printed); FLOPs are counted once
with ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix products, 2 per
multiply-add; grid_sample, norms and activations are not counted). The appearance extractor
runs once per avatar; the others run for every driving frame.

    .venv/bin/python scripts/bench_liveportrait_modules.py [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from avatarify_app.models import build_liveportrait


def _inputs(seed: int = 0) -> dict[str, tuple]:
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(1, 3, 256, 256, generator=g)
    feature = torch.randn(1, 32, 16, 64, 64, generator=g)
    kp_source = (torch.rand(1, 21, 3, generator=g) - 0.5) * 1.2
    kp_driving = kp_source + (torch.rand(1, 21, 3, generator=g) - 0.5) * 0.1
    return {"image": (image,), "warp": (feature, kp_driving, kp_source),
            "decoder": (torch.randn(1, 256, 64, 64, generator=g),)}


def measure(nets: dict[str, tuple[torch.nn.Module, str]], repeats: int) -> dict[str, dict[str, float]]:
    """{name: {'gflop', 's_median', 's_min'}} for (module, input kind) pairs."""
    inputs = _inputs()
    results = {}
    for name, (module, kind) in nets.items():
        args = inputs[kind]

        def call(module=module, kind=kind, args=args):
            if kind == "warp":
                return module(args[0], kp_driving=args[1], kp_source=args[2])
            if kind == "decoder":
                return module(feature=args[0])
            return module(*args)

        with torch.inference_mode():
            counter = FlopCounterMode(display=False)
            with counter:
                call()
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                call()
                times.append(time.perf_counter() - start)
        results[name] = {"gflop": counter.get_total_flops() / 1e9, "s_median": statistics.median(times),
                         "s_min": min(times)}
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    models = build_liveportrait()
    nets = {"appearance_feature_extractor (per avatar)": (models.appearance_feature_extractor, "image"),
            "motion_extractor": (models.motion_extractor, "image"),
            "warping_module": (models.warping_module, "warp"),
            "spade_generator": (models.spade_generator, "decoder")}
    results = measure(nets, args.repeats)
    per_frame = [v for k, v in results.items() if "per avatar" not in k]
    results["per driving frame (M + W + G)"] = {key: sum(v[key] for v in per_frame)
                                                for key in ("gflop", "s_median", "s_min")}
    if args.json:
        print(json.dumps({"threads": torch.get_num_threads(), "torch": torch.__version__, "results": results}, indent=1))
    else:
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.repeats} timed passes each")
        for name, r in results.items():
            print(f"{name:45s} {r['gflop']:8.1f} GFLOP  {r['s_median']:7.3f} s median  {r['s_min']:7.3f} s min"
                  f"  {r['gflop'] / r['s_min']:6.1f} GFLOP/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
