"""Command line: `python main.py [COMMAND] ...`. With no command the desktop app opens.

Each command lives in ``avatarify_app.commands.<name>`` with ``add_arguments(parser)``
and ``run(args) -> int``; modules are imported only when their command runs, so
`doctor` or `bench` never load Qt.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from avatarify_app import __version__
from avatarify_app.errors import AvatarifyError

COMMANDS = {
    "gui": "open the desktop app (the default)",
    "live": "run the live pipeline headless (camera/video -> avatar -> virtual camera)",
    "animate": "animate a portrait with a driving video, offline",
    "evaluate": "reconstruction metrics (L1, AKD, MKR) on a video",
    "bench": "measure per-frame speed of an engine",
    "doctor": "report what this machine can run and how to fix what is missing",
    "serve": "host an engine for --engine remote clients (a Ray Serve application)",
}


def _command_module(name: str):
    return importlib.import_module(f"avatarify_app.commands.{name}")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avatarify-app", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if only is None or only == name:
            _command_module(name).add_arguments(p)
    return parser


def split_verbosity(argv: list[str]) -> tuple[list[str], int]:
    """``argv`` without its -v/-vv/--verbose flags (before or after the command), and their count."""
    rest, verbose = [], 0
    for i, arg in enumerate(argv):
        if arg == "--":
            rest.extend(argv[i:])
            break
        if arg == "--verbose":
            verbose += 1
        elif len(arg) > 1 and arg[0] == "-" and set(arg[1:]) == {"v"}:
            verbose += len(arg) - 1
        else:
            rest.append(arg)
    return rest, verbose


def main(argv: list[str] | None = None) -> int:
    argv, verbose = split_verbosity(list(sys.argv[1:] if argv is None else argv))
    # `python main.py --camera VIDEO` means the GUI with options.
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help", "--version")):
        argv = ["gui", *argv]
    command = argv[0] if argv[0] in COMMANDS else None
    args = build_parser(only=command).parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(_command_module(args.command).run(args) or 0)
    except AvatarifyError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
