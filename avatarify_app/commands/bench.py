"""`bench`: per-frame speed of an engine, per stage, as text and optionally JSON.

The measuring itself lives beside each engine's command helpers
(``bench_fomm.measure`` and ``bench_landmarks.measure``); both return a ``BenchResult``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import dataclass, field


@dataclass
class BenchResult:
    """Per-frame timings in milliseconds, one list per stage, plus a description."""

    stages: dict[str, list[float]]
    total: list[float]
    meta: dict[str, object] = field(default_factory=dict)

    def summary(self) -> dict[str, object]:
        ms = statistics.median(self.total)
        out: dict[str, object] = dict(self.meta)
        out["frames"] = len(self.total)
        out["stages_ms"] = {k: round(statistics.median(v), 3) for k, v in self.stages.items() if v}
        out["ms_per_frame"] = round(ms, 3)
        out["ms_per_frame_mean"] = round(statistics.fmean(self.total), 3)
        out["ms_per_frame_p95"] = round(sorted(self.total)[int(0.95 * (len(self.total) - 1))], 3)
        out["fps"] = round(1000.0 / ms, 2) if ms > 0 else float("inf")
        return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", choices=("fomm", "landmarks"), default="fomm")
    p.add_argument("--checkpoint", help="FOMM checkpoint (default: random weights of the vox-256 shape)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.add_argument("--half", action="store_true", help="half-precision generator (GPU)")
    p.add_argument("--backend", default="auto", choices=("auto", "torch", "onnx"),
                   help="FOMM per-frame runtime on CPU")
    p.add_argument("--frames", type=int, default=20, help="timed frames (after warm-up)")
    p.add_argument("--warmup", type=int, default=3, help="untimed frames first")
    p.add_argument("--video", help="driving video (landmarks engine; default: a generated clip)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def run(args: argparse.Namespace) -> int:
    if args.engine == "fomm":
        from avatarify_app.commands import bench_fomm as impl
    else:
        from avatarify_app.commands import bench_landmarks as impl
    result: BenchResult = impl.measure(args)
    s = result.summary()
    print(f"engine: {s.get('engine', args.engine)}  device: {s.get('device', '?')}  frames: {s['frames']}")
    for stage, ms in s["stages_ms"].items():
        print(f"  {stage:<14s} {ms:9.2f} ms")
    print(f"  {'total':<14s} {s['ms_per_frame']:9.2f} ms  (p95 {s['ms_per_frame_p95']:.2f} ms)")
    print(f"  fps            {s['fps']:9.2f}")
    if args.json:
        print(json.dumps(s, sort_keys=True))
    return 0
