"""The remote engine's registration: the engine runs on a `serve` server (a Ray Serve application,
``avatarify_app.serve``) and this client sends it aligned face crops. Tracking and framing stay
on this machine; only the crop travels (JPEG by default, PNG on request) and the animated crop
comes back for paste-back here.

Importing this is cheap: the HTTP and WebSocket clients load when the factory runs. Detection
asks no network question: the engine is available when a server URL is configured.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from avatarify_app.config import EngineConfig, MotionOptions
from avatarify_app.engines.registry import Availability, EngineOption, EngineSpec

TOKEN_ENV = "AVATARIFY_TOKEN"


def server_problem(url: str) -> str | None:
    """Why ``url`` cannot be a server address, or None when it can."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https", "ws", "wss"):
        return f"{url!r} is not an http(s) URL"
    if not parts.hostname:
        return f"{url!r} names no host"
    try:
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        return f"{url!r} has a bad port"
    return None


def detect(config: EngineConfig) -> Availability:
    server = config.option("server")
    if not server:
        return Availability(False, "no server configured (pass --server URL of a `serve` server)", auto=False)
    problem = server_problem(str(server))
    if problem:
        return Availability(False, problem, auto=False)
    return Availability(True, f"server {server}", auto=True)


def create(config: EngineConfig, motion: MotionOptions):
    from avatarify_app.engines.remote.client import RemoteEngine

    return RemoteEngine.from_config(config, motion)


SPEC = EngineSpec(
    name="remote",
    display_name="Remote server...",
    summary="a `serve` server on another machine (e.g. with a GPU) animates; tracking stays here",
    factory=create,
    detect=detect,
    local=False,
    options=(
        EngineOption("server", "text", help="URL of a `python main.py serve` server, e.g. http://gpu-box:8000",
                     label="Server URL"),
        EngineOption("token", "secret", help=f"the server's access token (default: ${TOKEN_ENV})", label="Token"),
        EngineOption("remote_engine", "text", help="the engine the server must run (checked when connecting; "
                     "default: whichever it runs)", label="Server engine"),
        EngineOption("transport", "choice", default="websocket", choices=("websocket", "http"),
                     help="frames over one WebSocket (default) or one HTTP POST each", label="Transport"),
        EngineOption("image_format", "choice", default="jpeg", choices=("jpeg", "png"),
                     help="how crops travel: jpeg (default) or lossless png", label="Image format"),
        EngineOption("jpeg_quality", "int", default=90, minimum=1, maximum=100, step=1,
                     help="JPEG quality of the crops both ways (default 90)", label="JPEG quality"),
        EngineOption("max_in_flight", "int", default=2, minimum=1, maximum=4, step=1,
                     help="frames on the way at once: 2 overlaps the network with tracking (the output is one "
                     "frame behind); 1 waits for each frame (frame-exact, for animate/evaluate)",
                     label="Frames in flight"),
    ),
)
