"""`live`: camera (or video file) -> avatar -> virtual camera / MP4, headless.

    python main.py live --headless --camera 0 --avatar face.jpg
    python main.py live --headless --camera drive.mp4 --avatar face.jpg --no-vcam --record out.mp4

Runs until Ctrl-C or SIGTERM, until ``--frames N`` frames were processed, or until a video
file ends (unless ``--loop``); prints a stats line every ``--stats-every`` seconds and a
summary. Every way of stopping takes the same path out: the recording is finished (a
complete MP4 under its name) and the virtual camera is closed. ``--record`` does not
replace an existing file unless ``--force``.

A video file given as the camera is read *unpaced and lossless* (every frame is processed,
none dropped, as fast as the engine goes) so that a recording holds all its frames at the
file's frame rate. With the virtual camera on and no recording it plays at its own frame
rate instead, like a camera; ``--realtime`` forces that.

Without ``--headless`` this opens the desktop app (the ``gui`` command) with the same options.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from avatarify_app.config import CropConfig, LiveOptions, MotionOptions, VirtualCameraConfig
from avatarify_app.engines import add_engine_arguments, engine_config_from_args, engine_config_if_given
from avatarify_app.errors import ConfigError, VirtualCameraUnavailable
from avatarify_app.frames import IMAGE_SUFFIXES
from avatarify_app.paths import AVATARS_DIR


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT, e.g. 1280x720") from None
    if not (16 <= w <= 7680 and 16 <= h <= 4320):
        raise argparse.ArgumentTypeError(f"{text!r} is out of range")
    return w, h


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--headless", action="store_true", help="run without a window (else the desktop app opens)")
    p.add_argument("--camera", default="0",
                   help="camera index (0, 1, ...), device path (/dev/video0), or a video/image file (default 0)")
    p.add_argument("--avatar", help="portrait image to animate, or a gallery name such as astronaut "
                                    "(default: the first one in assets/avatars)")
    p.add_argument("--no-saved-calibration", action="store_true",
                   help="do not use or save the calibration and framing kept for this avatar (by the window too)")
    add_engine_arguments(p)
    p.add_argument("--no-vcam", action="store_true", help="do not open the virtual camera")
    p.add_argument("--vcam-size", type=parse_size, default=(1280, 720), metavar="WxH",
                   help="virtual camera size (default 1280x720)")
    p.add_argument("--vcam-fit", choices=("letterbox", "fill"), default="letterbox")
    p.add_argument("--vcam-fps", type=float, default=30.0)
    p.add_argument("--vcam-backend", help="pyvirtualcam backend (v4l2loopback, obs, unitycapture)")
    p.add_argument("--vcam-device", help="virtual camera device, e.g. /dev/video4")
    p.add_argument("--record", metavar="OUT.mp4", help="also write the avatar to an MP4 file (no audio)")
    p.add_argument("--force", action="store_true", help="replace the --record file when it exists")
    p.add_argument("--record-size", type=parse_size, metavar="WxH", help="recording size (default: the output's)")
    p.add_argument("--frames", type=int, default=0, metavar="N", help="stop after N processed frames")
    p.add_argument("--loop", action="store_true", help="loop a video file given as --camera")
    p.add_argument("--realtime", action="store_true", help="play a video file at its own frame rate")
    p.add_argument("--mirror", action="store_true", help="mirror the camera")
    p.add_argument("--absolute", action="store_true", help="absolute instead of relative motion")
    p.add_argument("--no-adapt-scale", action="store_true", help="do not adapt the motion scale")
    p.add_argument("--auto-calibrate", type=int, default=0, metavar="N",
                   help="pick the reference among the first N face frames by pose match")
    p.add_argument("--stats-every", type=float, default=2.0, metavar="SECONDS")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON line at the end")


def _default_avatar() -> Path | None:
    if not AVATARS_DIR.is_dir():
        return None
    images = sorted(p for p in AVATARS_DIR.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return images[0] if images else None


# Flags that only mean something without a window: (flag, argparse dest, its default).
HEADLESS_ONLY = (("--record", "record", None), ("--record-size", "record_size", None), ("--force", "force", False),
                 ("--frames", "frames", 0),
                 ("--loop", "loop", False), ("--realtime", "realtime", False),
                 ("--auto-calibrate", "auto_calibrate", 0), ("--json", "json", False),
                 ("--absolute", "absolute", False), ("--no-adapt-scale", "no_adapt_scale", False),
                 ("--no-saved-calibration", "no_saved_calibration", False))


def _open_gui(args: argparse.Namespace) -> int:
    """The desktop app with the options it can take; the headless-only ones are refused."""
    given = [flag for flag, dest, default in HEADLESS_ONLY if getattr(args, dest, default) != default]
    if given:
        raise ConfigError(f"{', '.join(given)} only work with --headless (the desktop app was asked for).",
                          "Add --headless, or drop them and use the window's own controls "
                          "(File > Record, Live > Calibrate, the Framing panel).")
    try:
        from avatarify_app.gui.app import run_app
    except ImportError:
        print("The desktop app is not available here; use `live --headless`.", file=sys.stderr, flush=True)
        return 2
    print("Opening the desktop app (pass --headless to run in the terminal).", flush=True)
    vcam = VirtualCameraConfig(width=args.vcam_size[0], height=args.vcam_size[1], fps=args.vcam_fps,
                               fit=args.vcam_fit, backend=args.vcam_backend, device=args.vcam_device)
    return int(run_app(camera=args.camera, avatar=args.avatar, engine_config=engine_config_if_given(args),
                       virtual_camera=not args.no_vcam, vcam_config=vcam,
                       mirror=True if args.mirror else None) or 0)


# Exit codes when a signal stopped the run: 128 + the signal's number, as shells report it.
SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143}


@contextmanager
def stop_on_signals(stop: threading.Event, received: list[str]) -> Iterator[None]:
    """While inside: SIGINT (Ctrl-C) and SIGTERM only set ``stop`` and note their name in
    ``received``; the run loop sees it and shuts down as at the end of a video (nothing is
    interrupted half-way, so a second signal cannot cut the shutdown short). The previous
    handlers come back on exit. Outside the main thread (signals go there) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run(args: argparse.Namespace) -> int:
    if not args.headless:
        return _open_gui(args)
    stop = threading.Event()
    received: list[str] = []
    try:
        with stop_on_signals(stop, received):
            return _run_headless(args, stop, received)
    finally:
        if received and threading.current_thread() is threading.main_thread():
            # A signal stopped the run, so the process is on its way out: a repeated one (a
            # service manager's second SIGTERM, Ctrl-C pressed twice) must not kill it between
            # the report and the exit code.
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_IGN)


def _run_headless(args: argparse.Namespace, stop: threading.Event, received: list[str]) -> int:
    # The pipeline (OpenCV, pyvirtualcam) loads only when the command runs.
    from avatarify_app.pipeline import RecorderSink, Session, VirtualCameraSink, avatar_store, open_source

    out = sys.stdout
    avatar = avatar_store.find_avatar(args.avatar) if args.avatar else _default_avatar()
    if avatar is None:
        names = ", ".join(avatar_store.gallery_names()) or "none"
        raise ConfigError(f"No portrait file or gallery avatar {args.avatar!r}." if args.avatar
                          else "No avatar given and none found in assets/avatars.",
                          f"Pass --avatar PORTRAIT.jpg or a gallery name ({names}).")
    saved = not args.no_saved_calibration
    if args.record:
        from avatarify_app.offline.outputs import check_output

        check_output(args.record, force=args.force, flag="--record")

    sinks = []
    vcam = None
    if not args.no_vcam:
        config = VirtualCameraConfig(width=args.vcam_size[0], height=args.vcam_size[1], fps=args.vcam_fps,
                                     fit=args.vcam_fit, backend=args.vcam_backend, device=args.vcam_device)
        try:
            vcam = VirtualCameraSink(config)
            sinks.append(vcam)
            print(f"virtual camera: {vcam.device} ({vcam.status})", file=out, flush=True)
        except VirtualCameraUnavailable as err:
            print(f"virtual camera: unavailable, running without it.\n  {err.message}\n"
                  + "\n".join("  " + line for line in err.hint.splitlines()), file=out, flush=True)

    paced = args.realtime or (vcam is not None and not args.record)
    source = open_source(args.camera, loop=args.loop, paced=paced)
    recorder = None
    if args.record:
        realtime = bool(getattr(source, "realtime", True))
        fps = args.vcam_fps
        if not realtime:
            source.open()  # to learn the file's frame rate
            fps = source.fps or fps
            source.close()
        recorder = RecorderSink(args.record, fps=fps, size=args.record_size, sync=realtime)
        sinks.append(recorder)

    options = LiveOptions(mirror=args.mirror, crop=avatar_store.saved_crop(avatar) if saved else CropConfig(),
                          motion=MotionOptions(relative=not args.absolute, adapt_scale=not args.no_adapt_scale))
    engine_config = engine_config_from_args(args)
    session = Session(source, engine_config=engine_config, options=options, sinks=sinks, avatar=avatar,
                      saved_calibrations=saved)
    done = threading.Event()
    counted = [0]

    def on_frame(event) -> None:
        counted[0] += 1
        if args.frames and counted[0] >= args.frames and not done.is_set():
            done.set()
            # On the inference thread, before it takes another frame: stopping from the main
            # thread let one more frame reach the sinks (--frames 60 recorded 61).
            session.stop()

    def on_error(event) -> None:
        print(f"[{event.stage}] {event.message}", file=sys.stderr, flush=True)

    calibration: dict = {}

    def on_reference(event) -> None:
        if event.reason == "saved":
            print("calibration: the one saved for this avatar (--no-saved-calibration ignores it)", file=out, flush=True)
        if event.reason == "auto" and event.crop is not None:
            calibration["pose_match"] = event.pose_match
            print(f"auto-calibration picked the reference (pose match {100 * (event.pose_match or 0):.0f}%)",
                  file=out, flush=True)

    session.add_frame_observer(on_frame)
    session.add_error_observer(on_error)
    session.add_reference_observer(on_reference)
    if args.auto_calibrate > 0:
        # Posted before start: it runs before the first frame, so the pick is among the first N.
        session.auto_calibrate(args.auto_calibrate)
    mode = "real time, newest frame wins" if getattr(source, "realtime", True) else "every frame (unpaced)"
    print(f"source: {source.name} ({mode}); avatar: {avatar}; engine: {args.engine}", file=out, flush=True)
    t_start = time.perf_counter()
    code = 0
    ready = None
    session.start()
    try:
        while not session.wait_ready(0.05) and not stop.is_set():
            pass
        stats = ready = session.stats()
        if stop.is_set():
            pass  # a signal came while the engine was being built: shut down without an error
        elif stats.engine is None or not session.has_avatar:
            print("error: cannot start (see the message above).", file=sys.stderr, flush=True)
            code = 2
        else:
            print(f"engine: {stats.engine} on {stats.device}. Ctrl-C stops.", file=out, flush=True)
            if args.engine == "auto" and stats.engine_note:
                print(f"  why: {stats.engine_note}", file=out, flush=True)
            for note in session.avatar_notes:
                print(f"note: {note}", file=out, flush=True)
            next_print = time.perf_counter() + args.stats_every
            while not done.is_set() and not session.ended and not stop.is_set():
                done.wait(0.05)
                if args.stats_every > 0 and time.perf_counter() >= next_print:
                    next_print += args.stats_every
                    print(session.stats().line(), file=out, flush=True)
    except KeyboardInterrupt:  # Ctrl-C where stop_on_signals could not take it (not the main thread)
        received.append("SIGINT")
    finally:
        session.close()  # joins the threads, then closes the sinks: the recording is finished, the
        # virtual camera closed (after Ctrl-C and SIGTERM too)
        stats = session.stats()  # after the join: every frame the sinks got is counted
        if ready is not None:  # the stopped inference thread has let go of the engine
            stats = replace(stats, engine=ready.engine, device=ready.device)
    if code:
        return code
    stopped_by = received[0] if received else None
    elapsed = time.perf_counter() - t_start
    summary = {
        "frames": stats.frames, "seconds": round(elapsed, 2), "fps": stats.fps,
        "latency_ms_p50": stats.latency_ms_p50, "latency_ms_p95": stats.latency_ms_p95,
        "stage_ms": stats.stage_ms, "dropped": stats.dropped, "engine": stats.engine, "device": stats.device,
        "virtual_camera": vcam.device if vcam is not None else None,
        "recording": ({"path": str(recorder.path), "frames": recorder.frames_written, "codec": recorder.codec}
                      if recorder is not None else None),
        "stopped_by": ({"SIGINT": "ctrl-c"}.get(stopped_by, stopped_by.lower()) if stopped_by
                       else "frames" if done.is_set() else "end of video"),
        "calibration": calibration or None,
    }
    print(f"summary: {stats.frames} frames in {elapsed:.1f} s, {stats.fps:.1f} fps, latency p50 "
          f"{stats.latency_ms_p50:.0f} ms / p95 {stats.latency_ms_p95:.0f} ms, dropped {stats.dropped}, "
          + (f"engine {stats.engine} on {stats.device}" if stats.engine else "engine not started"),
          file=out, flush=True)
    if recorder is not None:
        print(f"recorded {recorder.frames_written} frames to {recorder.path} ({recorder.codec}, no audio)", file=out, flush=True)
    if args.json:
        print(json.dumps(summary), file=out, flush=True)
    return SIGNAL_EXIT.get(stopped_by, 130) if stopped_by else 0
