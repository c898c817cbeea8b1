"""`evaluate`: the FOMM paper's reconstruction protocol on one video (Sec. 4.1); the work is
``offline.reconstruction`` (see there for shots and crops)."""

from __future__ import annotations

import argparse
import json
import sys

from avatarify_app.config import MotionOptions
from avatarify_app.engines import add_engine_arguments, engine_config_from_args
from avatarify_app.errors import NoFaceError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--video", required=True, help="video of a talking face")
    add_engine_arguments(p)
    p.add_argument("--no-crop", action="store_true", help="frames are already aligned face crops")
    p.add_argument("--moving-crop", action="store_true",
                   help="crop each frame with the tracker's smoothed box instead of one box per shot")
    p.add_argument("--cuts", choices=("auto", "off"), default="auto",
                   help="auto: split the video into shots at scene cuts (default); off: one shot")
    p.add_argument("--max-frames", type=int, default=0, help="stop after this many frames (0 = all)")
    p.add_argument("--no-landmark-metrics", action="store_true", help="L1 only (skip AKD and MKR)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from avatarify_app.engines import create_engine
    from avatarify_app.offline.metrics import AED_NOTE
    from avatarify_app.offline.reconstruction import load_shots, reconstruct
    from avatarify_app.pipeline.video import probe_video
    from avatarify_app.tracking import FaceMesh

    probe_video(args.video)  # a missing or unreadable video fails here, before the engine loads
    # The engine (and its checkpoint) before the video is tracked: a bad checkpoint fails fast.
    engine = create_engine(engine_config_from_args(args), MotionOptions())
    probe = None
    try:
        shots = load_shots(args.video, args.no_crop, args.moving_crop, args.max_frames, cuts=args.cuts)
        if not shots:
            raise NoFaceError(f"No face was found in {args.video}.", "Use a video of a clearly visible face.")
        probe = None if args.no_landmark_metrics else FaceMesh(static=True)
        total = sum(len(s) for s in shots)
        with tqdm(total=total, desc=f"reconstructing ({engine.name})", unit="frame",
                  file=sys.stderr, leave=False) as bar:
            score = reconstruct(engine, shots, probe, bar)
    finally:
        engine.close()
        if probe is not None:
            probe.close()
    s = score.summary()
    s.update({"engine": engine.name, "shots": len(shots), "video": str(args.video), "cuts": args.cuts,
              "crop": "none" if args.no_crop else ("moving" if args.moving_crop else "fixed per shot")})
    print(f"video: {args.video}  engine: {engine.name}  shots: {len(shots)}  frames: {s['frames']}")
    print(f"  L1   {s['l1']:.4f}  (mean abs error, pixels in [0, 1])")
    akd = "n/a" if s["akd"] is None else f"{s['akd']:.3f} px at {score.size}"
    mkr = "n/a" if s["mkr"] is None else f"{s['mkr']:.4f}"
    print(f"  AKD  {akd}  ({s['akd_landmarks']})")
    print(f"  MKR  {mkr}  (faces found in the real frame but not in the generated one)")
    print(f"  {AED_NOTE}")
    if args.json:
        print(json.dumps(s, sort_keys=True))
    return 0
