"""`evaluate`: the FOMM paper's reconstruction protocol on one video (Sec. 4.1).

The video is cut into continuous shots at scene changes. In each shot the first frame is
the source and the reference, and every frame of the shot is reconstructed from it with
the driving motion of the real frame; the generated frames are compared with the real ones:
L1, AKD and MKR (see ``engines.metrics``; AED is not computed).

Crops: like the paper's VoxCeleb test clips, each shot is cut with ONE fixed square box
(the union of the stream tracker's per-frame boxes over the shot), so the camera frame
stays put and only the head moves, as it does for a live avatar. ``--moving-crop`` uses
the tracker's per-frame (smoothed) boxes instead; ``--no-crop`` takes the frames as they
are (already aligned face crops, resized to 256).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from avatarify_app.commands.animate import add_engine_arguments
from avatarify_app.config import EngineConfig, MotionOptions
from avatarify_app.errors import NoFaceError

log = logging.getLogger(__name__)

CROP = 256
MIN_SHOT = 2


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--video", required=True, help="video of a talking face")
    add_engine_arguments(p)
    p.add_argument("--no-crop", action="store_true", help="frames are already aligned face crops")
    p.add_argument("--moving-crop", action="store_true",
                   help="crop each frame with the tracker's smoothed box instead of one box per shot")
    p.add_argument("--max-frames", type=int, default=0, help="stop after this many frames (0 = all)")
    p.add_argument("--no-landmark-metrics", action="store_true", help="L1 only (skip AKD and MKR)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def _frames(path: str | Path, max_frames: int):
    from avatarify_app.commands.animate import iter_video

    for i, f in enumerate(iter_video(path)):
        if max_frames and i >= max_frames:
            break
        yield i, f


def split_shots(path: str | Path, max_frames: int = 0) -> list[list[int]]:
    """Frame indices of each continuous shot (cut where consecutive thumbnails differ a lot)."""
    from avatarify_app.commands.animate import CutDetector

    shots: list[list[int]] = [[]]
    cuts = CutDetector()
    for i, f in _frames(path, max_frames):
        if cuts.is_cut(f):
            shots.append([])
        shots[-1].append(i)
    return [s for s in shots if s]


def load_shots(path: str | Path, no_crop: bool = False, moving_crop: bool = False,
               max_frames: int = 0) -> list[list[tuple[np.ndarray, np.ndarray | None]]]:
    """Per shot, (256 crop, landmarks in crop px or None) of the frames where a face was found."""
    from avatarify_app.commands.animate import probe_video
    from avatarify_app.frames import resize

    meta = probe_video(path)
    fps = float(meta.get("fps") or 25.0)
    if no_crop:
        shots = split_shots(path, max_frames)
        frames = {i: resize(f, (CROP, CROP)) for i, f in _frames(path, max_frames)}
        return [[(frames[i], None) for i in s] for s in shots if len(s) >= MIN_SHOT]
    from avatarify_app.tracking import CropBox, StreamTracker

    shots = split_shots(path, max_frames)
    shot_of = {i: n for n, s in enumerate(shots) for i in s}
    tracked: dict[int, tuple[CropBox, np.ndarray]] = {}
    result: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    tracker, current = StreamTracker(), 0
    try:
        for i, f in _frames(path, max_frames):
            if shot_of[i] != current:  # nothing carries over a cut
                tracker.reset()
                current = shot_of[i]
            r = tracker.process(f, i / fps)
            if r is None:
                continue
            tracked[i] = (r.box, r.face.landmarks)
            if moving_crop:
                result[i] = (r.crop, r.landmarks)
    finally:
        tracker.close()
    if not moving_crop:
        boxes: dict[int, CropBox] = {}
        for n, s in enumerate(shots):
            seen = [tracked[i][0].as_xyxy() for i in s if i in tracked]
            if not seen:
                continue
            xy = np.array(seen)
            x0, y0 = xy[:, :2].min(0)
            x1, y1 = xy[:, 2:].max(0)
            boxes[n] = CropBox(float(x0 + x1) / 2, float(y0 + y1) / 2, float(max(x1 - x0, y1 - y0)))
        for i, f in _frames(path, max_frames):
            if i in tracked:
                box = boxes[shot_of[i]]
                result[i] = (box.extract(f, CROP), box.to_crop(tracked[i][1], CROP).astype(np.float32))
    out = [[result[i] for i in s if i in result] for s in shots]
    return [s for s in out if len(s) >= MIN_SHOT]


def reconstruct(engine, shots, probe=None, progress=None):
    """Run the protocol; returns a metrics.ReconstructionScore."""
    from avatarify_app.engines.metrics import ReconstructionScore

    score = ReconstructionScore(size=CROP)
    for shot in shots:
        src, src_lms = shot[0]
        engine.set_source(src, src_lms)
        engine.set_reference(None)
        engine.set_reference(src, src_lms)
        for crop, lms in shot:
            try:
                out = engine.predict(crop, lms)
            except NoFaceError:
                out = src
            score.add(out, crop, probe)
            if progress is not None:
                progress.update(1)
    return score


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from avatarify_app.engines import create_engine
    from avatarify_app.engines.metrics import AED_NOTE, MeshProbe

    shots = load_shots(args.video, args.no_crop, args.moving_crop, args.max_frames)
    if not shots:
        raise NoFaceError(f"No face was found in {args.video}.", "Use a video of a clearly visible face.")
    config = EngineConfig(name=args.engine, checkpoint=args.checkpoint, model_config=getattr(args, "model_config", None), device=args.device)
    engine = create_engine(config, MotionOptions())
    probe = None if args.no_landmark_metrics else MeshProbe()
    total = sum(len(s) for s in shots)
    try:
        with tqdm(total=total, desc=f"reconstructing ({engine.name})", unit="frame",
                  file=sys.stderr, leave=False) as bar:
            score = reconstruct(engine, shots, probe, bar)
    finally:
        engine.close()
        if probe is not None:
            probe.close()
    s = score.summary()
    s.update({"engine": engine.name, "shots": len(shots), "video": str(args.video),
              "crop": "none" if args.no_crop else ("moving" if args.moving_crop else "fixed per shot")})
    print(f"video: {args.video}  engine: {engine.name}  shots: {len(shots)}  frames: {s['frames']}")
    print(f"  L1   {s['l1']:.4f}  (mean abs error, pixels in [0, 1])")
    akd = "n/a" if s["akd"] is None else f"{s['akd']:.3f} px at {CROP}"
    mkr = "n/a" if s["mkr"] is None else f"{s['mkr']:.4f}"
    print(f"  AKD  {akd}  ({s['akd_landmarks']})")
    print(f"  MKR  {mkr}  (faces found in the real frame but not in the generated one)")
    print(f"  {AED_NOTE}")
    if args.json:
        print(json.dumps(s, sort_keys=True))
    return 0
