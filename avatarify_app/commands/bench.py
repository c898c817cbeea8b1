"""`bench`: per-frame speed of any engine on the live path, per stage, as text and optionally
JSON (the measuring is ``offline.bench``; see there for what is timed)."""

from __future__ import annotations

import argparse
import json

from avatarify_app.engines import add_engine_arguments, engine_config_from_args


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_engine_arguments(p, default="fomm")
    p.add_argument("--frames", type=int, default=20, help="timed frames (after warm-up)")
    p.add_argument("--warmup", type=int, default=3, help="untimed frames first")
    p.add_argument("--video", help="driving video (default: the demo clip)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def run(args: argparse.Namespace) -> int:
    from avatarify_app.offline.bench import measure

    result = measure(engine_config_from_args(args), frames=args.frames, warmup=args.warmup, video=args.video)
    s = result.summary()
    print(f"engine: {s['engine']}  device: {s['device']}  frames: {s['frames']}  video: {s['video']}")
    for stage, ms in s["stages_ms"].items():
        print(f"  {stage:<14s} {ms:9.2f} ms")
    print(f"  {'engine total':<14s} {s['ms_per_frame']:9.2f} ms  (p95 {s['ms_per_frame_p95']:.2f} ms)  "
          f"{s['fps']:.2f} fps")
    if "live_ms_per_frame" in s:
        print(f"  {'live path':<14s} {s['live_ms_per_frame']:9.2f} ms  (tracking + engine)  {s['live_fps']:.2f} fps")
    if args.json:
        print(json.dumps(s, sort_keys=True))
    return 0
