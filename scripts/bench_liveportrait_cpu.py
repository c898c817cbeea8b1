"""Seconds per LivePortrait driving frame on the CPU: the authors' eager modules, our reference
modules (eager) and ``FastRuntime``, with the FLOP floor.

One driving frame with the source prepared (its feature volume and keypoints computed once):
motion extractor -> keypoint transform -> stitching -> warping module -> SPADE decoder, at the
released sizes (256x256 crops, 32x16x64x64 volume, 512x512 output) with the same random
weights in all three. The variants run in interleaved rounds (one frame each per round) so a
change in machine load hits them alike; the load average is printed before and after (the
numbers only mean something on a quiet machine).

FLOPs are counted with ``torch.utils.flop_counter`` (convolutions and matrix products, 2 per
multiply-add; complex products as 4 real ones; FFTs as 2.5 N log2 N per real transform;
grid_sample, norms and activations are not counted). The FLOP floor is a variant's count
divided by this machine's rate, measured on a large direct 3x3 convolution.

Wall time is what counts; the process CPU time (all threads) is printed too: with ``--threads 1``
it is the steadier comparison when other work shares the machine.

The authors' code is not part of this project: pass ``--authors DIR``, a directory whose
``src/modules`` is the KwaiVGI/LivePortrait package (e.g. extracted with
``git -C <their repo> archive HEAD src/modules src/config | tar x -C DIR``); without it that
column is skipped.

    .venv/bin/python scripts/bench_liveportrait_cpu.py --authors /tmp/lp-oracle [--rounds 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from avatarify_app.engines.liveportrait.fast import FastRuntime
from avatarify_app.models.liveportrait import build_liveportrait, load_model_params
from avatarify_app.motion import apply_stitching, transform_keypoint

Frame = Callable[[], torch.Tensor]


def _bmm_flops(a, b, *args, out_val=None, **kwargs) -> int:
    flops = 2 * a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]
    return 4 * flops if a.is_complex() else flops


def _fft_flops(x, dim, *args, out_val=None, **kwargs) -> int:
    real = out_val if not out_val.is_complex() else x  # the real side of an r2c / c2r transform
    n = math.prod(real.shape[d] for d in dim)
    return int(2.5 * real.numel() * math.log2(max(n, 2)))


for _f in (_bmm_flops, _fft_flops):
    _f._get_raw = True
FLOP_MAPPING = {torch.ops.aten.bmm: _bmm_flops, torch.ops.aten._fft_r2c: _fft_flops,
                torch.ops.aten._fft_c2r: _fft_flops}


def count_gflop(frame: Frame) -> float:
    counter = FlopCounterMode(display=False, custom_mapping=FLOP_MAPPING)
    with counter:
        frame()
    return counter.get_total_flops() / 1e9


def machine_gflops(repeats: int = 5) -> float:
    """GFLOP/s of a direct 3x3 conv, 512 -> 512 channels at 64x64 (the decoder's bulk)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 512, 64, 64, generator=g)
    w = torch.randn(512, 512, 3, 3, generator=g) * 0.01
    flop = 2 * 9 * 512 * 512 * 64 * 64
    with torch.inference_mode():
        F.conv2d(x, w, padding=1)
        best = min(_timed(lambda: F.conv2d(x, w, padding=1)) for _ in range(repeats))
    return flop / best / 1e9


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _timed_both(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds over all threads)."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _peak_rss_mb() -> float:
    """This process's peak resident memory (0 where the platform does not say)."""
    try:
        import resource
    except ImportError:  # not on Windows
        return 0.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def authors_modules(directory: Path, params: dict, ours) -> dict:
    """The authors' four per-frame modules from ``directory`` with our modules' weights."""
    sys.path.insert(0, str(directory))
    from src.modules.motion_extractor import MotionExtractor
    from src.modules.spade_generator import SPADEDecoder
    from src.modules.stitching_retargeting_network import StitchingRetargetingNetwork
    from src.modules.warping_network import WarpingNetwork

    nets = {"motion_extractor": MotionExtractor(**params["motion_extractor_params"]),
            "warping_module": WarpingNetwork(**params["warping_module_params"]),
            "spade_generator": SPADEDecoder(**params["spade_generator_params"]),
            "stitching": StitchingRetargetingNetwork(**params["stitching_retargeting_module_params"]["stitching"])}
    sources = {"motion_extractor": ours.motion_extractor, "warping_module": ours.warping_module,
               "spade_generator": ours.spade_generator, "stitching": ours.stitching_retargeting_module["stitching"]}
    for name, net in nets.items():
        net.load_state_dict(sources[name].state_dict(), strict=True)
        net.eval()
    return nets


def frames(models, authors: dict | None, runtime: FastRuntime, driving: torch.Tensor, feature: torch.Tensor,
           kp_source: torch.Tensor) -> dict[str, Frame]:
    """One driving frame through each variant, returning the 512x512 image."""

    def eager(me, stitching, warp, decoder) -> Frame:
        def frame() -> torch.Tensor:
            x_d = apply_stitching(stitching, kp_source, transform_keypoint(me(driving)))
            out = warp(feature, kp_driving=x_d, kp_source=kp_source)
            return decoder(feature=out["out"])
        return frame

    def fast() -> torch.Tensor:
        x_d = transform_keypoint(runtime.motion(driving))
        x_d = apply_stitching(models.stitching_retargeting_module["stitching"], kp_source, x_d)
        return runtime.warp_decode(feature, kp_source, x_d)["out"]

    out = {}
    if authors is not None:
        out["authors_eager"] = eager(authors["motion_extractor"], authors["stitching"], authors["warping_module"],
                                     authors["spade_generator"])
    out["ours_reference_eager"] = eager(models.motion_extractor, models.stitching_retargeting_module["stitching"],
                                        models.warping_module, models.spade_generator)
    out["ours_fast"] = fast
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--authors", type=Path, help="directory holding the authors' src/modules (see above)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved timed rounds (one frame per variant each)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--winograd", choices=("auto", "on", "off"), default="auto")
    p.add_argument("--allocator", choices=("tuned", "default"), default="tuned",
                   help="tuned: FastRuntime's process-wide malloc tuning (all variants profit, as they share the "
                        "process); default: glibc as it comes")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    torch.manual_seed(0)
    params = load_model_params()
    models = build_liveportrait(params).eval()
    g = torch.Generator().manual_seed(1)
    source = F.interpolate(torch.rand(1, 3, 32, 32, generator=g), size=(256, 256), mode="bilinear")
    driving = F.interpolate(torch.rand(1, 3, 32, 32, generator=g), size=(256, 256), mode="bilinear")
    authors = authors_modules(args.authors, params, models) if args.authors else None
    winograd = {"auto": "auto", "on": True, "off": False}[args.winograd]
    build_start = time.perf_counter()
    runtime = FastRuntime(models, winograd=winograd, keep_memory=args.allocator == "tuned")
    build_s = time.perf_counter() - build_start
    with torch.inference_mode():
        feature = models.appearance_feature_extractor(source)
        kp_source = transform_keypoint(models.motion_extractor(source))
        runtime.prepare_source(feature, kp_source)
        variants = frames(models, authors, runtime, driving, feature, kp_source)
        images = {name: frame() for name, frame in variants.items()}  # warm-up (and FFT spectra)
        reference = images["ours_reference_eager"]
        agreement = {name: float((img - reference).abs().max()) for name, img in images.items()}
        gflop = {name: count_gflop(frame) for name, frame in variants.items()}
        times: dict[str, list[float]] = {name: [] for name in variants}
        cpu_times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, frame in variants.items():
                wall, cpu = _timed_both(frame)
                times[name].append(wall)
                cpu_times[name].append(cpu)
        rate = machine_gflops()
    load_after = os.getloadavg()
    peak_rss_mb = _peak_rss_mb()
    base = "authors_eager" if authors is not None else "ours_reference_eager"
    results = {name: {"s_median": statistics.median(t), "s_min": min(t), "cpu_s_min": min(cpu_times[name]),
                      "gflop": gflop[name],
                      "floor_s": gflop[name] / rate, "speedup_vs_" + base: statistics.median(times[base]) / statistics.median(t),
                      "max_abs_vs_reference": agreement[name]}
               for name, t in times.items()}
    report = {"threads": torch.get_num_threads(), "torch": torch.__version__, "cpu_count": os.cpu_count(),
              "load_average_before": load_before, "load_average_after": load_after, "rounds": args.rounds,
              "machine_gflops": rate, "fast_build_s": build_s, "winograd": args.winograd, "allocator": args.allocator,
              "peak_rss_mb": peak_rss_mb, "results": results}
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    busy = load_before[0] > 0.5
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.rounds} interleaved rounds; "
          f"load average before {load_before[0]:.2f} (after {load_after[0]:.2f}, this run included) on "
          f"{os.cpu_count()} CPUs" + ("  (NOT quiet before the run: numbers are inflated)" if busy else ""))
    print(f"machine: {rate:.0f} GFLOP/s (direct 3x3 conv 512->512 at 64x64); FastRuntime built in {build_s:.1f} s; "
          f"winograd {args.winograd}, allocator {args.allocator}; peak RSS {peak_rss_mb:.0f} MB (all variants)")
    print(f"{'variant':22s} {'s/frame med':>11s} {'min':>7s} {'cpu s min':>9s} {'x vs ' + base:>26s} {'GFLOP':>8s} "
          f"{'floor s':>8s} {'max|diff|':>9s}")
    for name, r in results.items():
        print(f"{name:22s} {r['s_median']:11.3f} {r['s_min']:7.3f} {r['cpu_s_min']:9.3f} {r['speedup_vs_' + base]:26.2f} "
              f"{r['gflop']:8.1f} {r['floor_s']:8.3f} {r['max_abs_vs_reference']:9.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
