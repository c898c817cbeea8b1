"""`gui` (the default command): open the desktop app."""

from __future__ import annotations

import argparse
from pathlib import Path

from avatarify_app.engines import add_engine_arguments, engine_config_if_given


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--camera", help="camera index or device path, or a video file to use as the camera")
    p.add_argument("--avatar", help="portrait to animate (image file or a name from the gallery)")
    add_engine_arguments(p, default=None)
    p.add_argument("--no-vcam", action="store_true", help="do not offer the virtual camera")
    p.add_argument("--screenshot", metavar="PNG", help="save a picture of the window once frames flow, then quit")
    p.add_argument("--quit-after", type=float, metavar="SECONDS", help="quit after this many seconds at most")


def run(args: argparse.Namespace) -> int:
    from avatarify_app.gui.app import run_app  # Qt is loaded only for this command

    return run_app(camera=args.camera, avatar=args.avatar, engine_config=engine_config_if_given(args),
                   virtual_camera=not args.no_vcam, screenshot=args.screenshot, quit_after=args.quit_after,
                   on_screenshot=_report_screenshot)


def _report_screenshot(path: Path, frames: int) -> None:
    """The command's own output for --screenshot: where the picture went."""
    print(f"screenshot: {path} ({frames} frames shown)", flush=True)
