"""`animate`: animate a portrait with a driving video, offline, into a video file.

The work is ``offline.animation.animate_video`` (see there for what the output holds, scene
cuts and ``--find-best-frame``); this module is the command line around it.
"""

from __future__ import annotations

import argparse

from avatarify_app.config import MotionOptions
from avatarify_app.engines import add_engine_arguments, engine_config_from_args


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", required=True, help="portrait image (the avatar)")
    p.add_argument("--driving", required=True, help="driving video (a face that moves and talks)")
    p.add_argument("--output", required=True, help="output video (.mp4); an existing file is kept unless --force")
    p.add_argument("--force", action="store_true", help="replace --output when it exists")
    add_engine_arguments(p)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--relative", dest="relative", action="store_true", default=True,
                      help="transfer motion relative to the first (or best) driving frame (default)")
    mode.add_argument("--absolute", dest="relative", action="store_false",
                      help="use the driving face's keypoints as they are")
    p.add_argument("--adapt-scale", action="store_true",
                   help="scale the motion by the ratio of source and driving face sizes")
    p.add_argument("--find-best-frame", action="store_true",
                   help="start from the driving frame that best matches the source's pose and expression")
    p.add_argument("--no-crop", action="store_true",
                   help="source and driving are already aligned face crops; output the 256 crop")
    p.add_argument("--cuts", choices=("auto", "off"), default="auto",
                   help="auto: animate each shot of the driving video from its own reference, cut where "
                        "the scene changes (default); off: the driving video is one shot")


def run(args: argparse.Namespace) -> int:
    from avatarify_app.offline.animation import animate_video
    from avatarify_app.offline.outputs import check_output

    # Before anything is loaded or tracked: an existing file is not replaced without --force.
    output = check_output(args.output, force=args.force, flag="--output", inputs=(args.source, args.driving))
    result = animate_video(args.source, args.driving, output, engine_config_from_args(args),
                           MotionOptions(relative=args.relative, adapt_scale=args.adapt_scale),
                           no_crop=args.no_crop, find_best_frame=args.find_best_frame, cuts=args.cuts)
    for note in result.notes:  # about the portrait (logged when found, too)
        print(f"note: {note}")
    audio = "with the driving video's audio" if result.has_audio else "no audio"
    refs = ", ".join(str(r) for r in result.references)
    print(f"wrote {result.path} ({result.frames} frames, {result.size[0]}x{result.size[1]}, {result.fps:.2f} fps, "
          f"{audio}; engine {result.engine}, {result.shots} shot(s), reference frame(s) {refs})")
    return 0
